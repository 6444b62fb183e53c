"""The open catalog as DCAT-AP 3 (rdflib): the catalogue, paged with hydra, and each
dataset with its distributions, publisher (foaf:Agent), contact point and the table
schema of its information items (CSVW). docs/opendata.md holds the mapping."""

from __future__ import annotations

from datetime import UTC, datetime

from rdflib import BNode, Graph, Literal, Namespace, URIRef
from rdflib.collection import Collection
from rdflib.namespace import DCAT, DCTERMS, FOAF, RDF, RDFS, SKOS, XSD
from rdflib.term import Node
from sqlalchemy.orm import Session

from govshare.opendata import datasets as ds
from govshare.opendata.ckan import SITE_TITLE, Site
from govshare.opendata.vocab import (
    ACCESS_RIGHTS,
    DATATYPES,
    EU,
    FILE_TYPES,
    FREQUENCY,
    IANA,
    LICENSE_URIS,
    data_theme,
)
from govshare.opendata.vocab import (
    MEDIA_TYPES as DIST_MEDIA_TYPES,
)

HYDRA = Namespace("http://www.w3.org/ns/hydra/core#")
VCARD = Namespace("http://www.w3.org/2006/vcard/ns#")
CSVW = Namespace("http://www.w3.org/ns/csvw#")
ADMS = Namespace("http://www.w3.org/ns/adms#")
PUBLISHER_TYPE = Namespace("http://purl.org/adms/publishertype/")
DCATAP = Namespace("http://data.europa.eu/r5r/")
SPDX = Namespace("http://spdx.org/rdf/terms#")

DCAT_VERSION = URIRef(str(DCAT) + "version")  # DCAT 3; rdflib's DCAT namespace predates it
PAGE_SIZE = 100
FORMATS = {"ttl": "turtle", "rdf": "xml", "jsonld": "json-ld"}
MEDIA_TYPES = {
    "ttl": "text/turtle; charset=utf-8",
    "rdf": "application/rdf+xml; charset=utf-8",
    "jsonld": "application/ld+json; charset=utf-8",
}
CHINA = URIRef(EU + "country/CHN")
CHINESE = URIRef(EU + "language/ZHO")
AVAILABLE = URIRef(EU + "planned-availability/AVAILABLE")
THEME_TAXONOMY = URIRef(EU + "data-theme")
# 部门层级 → ADMS publisher type.
AUTHORITY = {
    "province": "RegionalAuthority",
    "city": "LocalAuthority",
    "district": "LocalAuthority",
}


def _graph() -> Graph:
    g = Graph(bind_namespaces="core")
    for prefix, ns in [("dcat", DCAT), ("dct", DCTERMS), ("foaf", FOAF), ("vcard", VCARD),
                       ("hydra", HYDRA), ("csvw", CSVW), ("adms", ADMS), ("skos", SKOS),
                       ("dcatap", DCATAP)]:  # fmt: skip
        g.bind(prefix, ns)
    return g


def _zh(text: str) -> Literal:
    return Literal(text, lang="zh")


def _when(value: datetime) -> Literal:
    return Literal(value.astimezone(UTC).replace(microsecond=0).isoformat(), datatype=XSD.dateTime)


def dataset_uri(site: Site, d: ds.Dataset) -> URIRef:
    return URIRef(site.url(f"/open/datasets/{d.slug}"))


def _publisher(g: Graph, site: Site, p: ds.Publisher) -> URIRef:
    agent = URIRef(site.url(f"/open/organizations/{p.slug}"))
    if (agent, RDF.type, FOAF.Agent) in g:
        return agent
    g.add((agent, RDF.type, FOAF.Agent))
    g.add((agent, RDF.type, FOAF.Organization))
    g.add((agent, FOAF.name, _zh(p.name)))
    g.add((agent, DCTERMS.identifier, Literal(p.credit_code)))
    g.add((agent, SKOS.prefLabel, _zh(p.name)))
    g.add((agent, DCTERMS.type, PUBLISHER_TYPE[AUTHORITY.get(p.level, "LocalAuthority")]))
    return agent


def _contact(g: Graph, site: Site, p: ds.Publisher) -> BNode:
    kind = BNode()
    g.add((kind, RDF.type, VCARD.Organization))
    g.add((kind, VCARD.fn, _zh(p.name)))
    g.add((kind, VCARD.hasURL, URIRef(site.url(f"/open/organizations/{p.slug}"))))
    return kind


def _table_schema(g: Graph, d: ds.Dataset) -> BNode:
    schema = BNode()
    g.add((schema, RDF.type, CSVW.Schema))
    columns: list[Node] = []
    for item in d.items:
        col = BNode()
        g.add((col, RDF.type, CSVW.Column))
        g.add((col, CSVW.name, Literal(item.code)))
        g.add((col, CSVW.title, _zh(item.name)))
        # A masked column (开放脱敏) holds masked text, whatever the item's own type.
        datatype = "string" if item.masked else DATATYPES.get(item.data_type, "string")
        g.add((col, CSVW.datatype, XSD[datatype]))
        if item.masked:
            g.add((col, CSVW.note, _zh(f"该信息项的值脱敏发布（{item.masking.label}）")))
        if item.length is not None:
            g.add((col, CSVW.maxLength, Literal(item.length, datatype=XSD.integer)))
        if item.description:
            g.add((col, DCTERMS.description, _zh(item.description)))
        if item.is_key:
            g.add((col, CSVW.required, Literal(True)))
        columns.append(col)
    head = BNode()
    Collection(g, head, columns)
    g.add((schema, CSVW.column, head))
    keys = [it.code for it in d.items if it.is_key]
    if keys:
        g.add((schema, CSVW.primaryKey, Literal(" ".join(keys))))
    return schema


def add_dataset(g: Graph, site: Site, d: ds.Dataset) -> URIRef:
    """Add one dataset with its distributions, publisher and contact point."""
    node = dataset_uri(site, d)
    license_id, license_title, _license_url = d.license
    access = URIRef(ACCESS_RIGHTS[d.open_type.value])
    license_uri = URIRef(LICENSE_URIS.get(license_id) or site.url(f"/open/licenses/{license_id}"))
    g.add((license_uri, RDF.type, DCTERMS.LicenseDocument))
    g.add((license_uri, RDFS.label, _zh(license_title)))

    g.add((node, RDF.type, DCAT.Dataset))
    g.add((node, DCTERMS.title, _zh(d.title)))
    g.add((node, DCTERMS.description, _zh(d.description)))
    g.add((node, DCTERMS.identifier, Literal(d.code)))
    g.add((node, ADMS.identifier, Literal(d.uuid)))
    g.add((node, DCTERMS.publisher, _publisher(g, site, d.publisher)))
    g.add((node, DCAT.contactPoint, _contact(g, site, d.publisher)))
    g.add(
        (
            node,
            DCTERMS.accrualPeriodicity,
            URIRef(FREQUENCY.get(d.update_cycle, FREQUENCY["unknown"])),
        )
    )
    if d.issued is not None:
        g.add((node, DCTERMS.issued, Literal(d.issued.isoformat(), datatype=XSD.date)))
    g.add((node, DCTERMS.modified, _when(d.modified)))
    g.add(
        (
            node,
            DCAT.theme,
            URIRef(data_theme(d.classification[-1].code if d.classification else "")),
        )
    )
    for keyword in d.keywords:
        g.add((node, DCAT.keyword, _zh(keyword)))
    g.add((node, DCTERMS.spatial, CHINA))
    g.add((node, DCTERMS.language, CHINESE))
    g.add((node, DCTERMS.accessRights, access))
    g.add((node, DCAT.landingPage, URIRef(site.url(f"/open/datasets/{d.slug}"))))
    g.add((node, DCTERMS.conformsTo, URIRef(site.url(f"/open/datasets/{d.slug}.ttl"))))
    g.add((node, ADMS.versionNotes, _zh(f"第 {d.version} 版")))
    g.add((node, DCAT_VERSION, Literal(str(d.version))))
    if d.open_conditions:
        g.add((node, RDFS.comment, _zh(f"开放条件：{d.open_conditions}")))

    for dist in d.distributions:
        dn = URIRef(f"{node}/distribution/{dist.format.lower()}")
        url = URIRef(site.url(dist.path))
        g.add((node, DCAT.distribution, dn))
        g.add((dn, RDF.type, DCAT.Distribution))
        g.add((dn, DCTERMS.title, _zh(f"{d.title} ({dist.format})")))
        g.add((dn, DCTERMS.description, _zh(f"{d.title}，{dist.format} 格式")))
        g.add((dn, DCAT.accessURL, url))
        g.add((dn, DCAT.downloadURL, url))
        g.add((dn, DCTERMS.format, URIRef(FILE_TYPES[dist.format])))
        g.add((dn, DCAT.mediaType, URIRef(IANA + DIST_MEDIA_TYPES[dist.format])))
        g.add((dn, DCTERMS.license, license_uri))
        g.add((dn, DCATAP.availability, AVAILABLE))
        g.add((dn, DCTERMS.modified, _when(d.modified)))
        if d.issued is not None:
            g.add((dn, DCTERMS.issued, Literal(d.issued.isoformat(), datatype=XSD.date)))
        if dist.format in ds.TABLE_DOWNLOADS and d.items:
            g.add((dn, CSVW.tableSchema, _table_schema(g, d)))
    for f in d.files:
        dn = URIRef(f"{node}/distribution/file-{f.file_id}")
        url = URIRef(site.url(f.path))
        g.add((node, DCAT.distribution, dn))
        g.add((dn, RDF.type, DCAT.Distribution))
        g.add((dn, DCTERMS.title, _zh(f.name)))
        if f.description:
            g.add((dn, DCTERMS.description, _zh(f.description)))
        g.add((dn, DCAT.accessURL, url))
        g.add((dn, DCAT.downloadURL, url))
        if f.format in FILE_TYPES:
            g.add((dn, DCTERMS.format, URIRef(FILE_TYPES[f.format])))
        g.add((dn, DCAT.mediaType, URIRef(IANA + f.media_type.split(";")[0].strip())))
        g.add((dn, DCAT.byteSize, Literal(f.size, datatype=XSD.nonNegativeInteger)))
        checksum = BNode()
        g.add((dn, SPDX.checksum, checksum))
        g.add((checksum, RDF.type, SPDX.Checksum))
        g.add((checksum, SPDX.algorithm, SPDX.checksumAlgorithm_sha256))
        g.add((checksum, SPDX.checksumValue, Literal(f.sha256, datatype=XSD.hexBinary)))
        g.add((dn, DCTERMS.license, license_uri))
        g.add((dn, DCATAP.availability, AVAILABLE))
        g.add((dn, DCTERMS.modified, _when(f.uploaded_at)))
    return node


def _catalog_node(g: Graph, site: Site, session: Session) -> URIRef:
    catalog = URIRef(site.url("/open/catalog"))
    g.add((catalog, RDF.type, DCAT.Catalog))
    g.add((catalog, DCTERMS.title, _zh(SITE_TITLE)))
    g.add(
        (
            catalog,
            DCTERMS.description,
            _zh("政务数据开放目录：各部门依法向社会开放的政务数据资源。"),
        )
    )
    platform = URIRef(site.url("/open/organizations/platform"))
    g.add((platform, RDF.type, FOAF.Agent))
    g.add((platform, FOAF.name, _zh(SITE_TITLE)))
    g.add((platform, DCTERMS.type, PUBLISHER_TYPE.LocalAuthority))
    g.add((catalog, DCTERMS.publisher, platform))
    g.add((catalog, FOAF.homepage, URIRef(site.url("/open/"))))
    g.add((catalog, DCTERMS.language, CHINESE))
    g.add((catalog, DCTERMS.spatial, CHINA))
    g.add((catalog, DCAT.themeTaxonomy, THEME_TAXONOMY))
    g.add((catalog, DCTERMS.license, URIRef(LICENSE_URIS["cc-by-4.0"])))
    newest = ds.last_modified(session)
    if newest is not None:
        g.add((catalog, DCTERMS.modified, _when(newest)))
    oldest = ds.first_published(session)
    if oldest is not None:
        g.add((catalog, DCTERMS.issued, _when(oldest)))
    return catalog


def catalog_graph(
    session: Session, site: Site, *, page: int = 1, fmt: str = "ttl"
) -> tuple[Graph, bool]:
    """One hydra page of the catalogue (datasets by name), and whether the page exists
    (page 1 always does, an empty catalogue included)."""
    g = _graph()
    catalog = _catalog_node(g, site, session)
    total = ds.count_datasets(session)
    last = max(1, -(-total // PAGE_SIZE))
    if page > last:
        return g, False
    ids = ds.list_dataset_ids(
        session, limit=PAGE_SIZE, offset=(page - 1) * PAGE_SIZE, newest_first=False
    )
    for d in ds.load_datasets(session, ids):
        g.add((catalog, DCAT.dataset, add_dataset(g, site, d)))

    def at(n: int) -> URIRef:
        return URIRef(site.url(f"/open/catalog.{fmt}?page={n}"))

    view = at(page)
    g.add((catalog, HYDRA.totalItems, Literal(total, datatype=XSD.integer)))
    g.add((catalog, HYDRA.view, view))
    g.add((view, RDF.type, HYDRA.PartialCollectionView))
    g.add((view, HYDRA.itemsPerPage, Literal(PAGE_SIZE, datatype=XSD.integer)))
    g.add((view, HYDRA.first, at(1)))
    g.add((view, HYDRA.last, at(last)))
    if page > 1:
        g.add((view, HYDRA.previous, at(page - 1)))
    if page < last:
        g.add((view, HYDRA.next, at(page + 1)))
    return g, True


def dataset_graph(site: Site, d: ds.Dataset) -> Graph:
    g = _graph()
    node = add_dataset(g, site, d)
    g.add((URIRef(site.url("/open/catalog")), DCAT.dataset, node))
    return g


def serialize(g: Graph, fmt: str) -> bytes:
    if fmt == "jsonld":
        return g.serialize(format="json-ld", encoding="utf-8", auto_compact=True)
    return g.serialize(format=FORMATS[fmt], encoding="utf-8")
