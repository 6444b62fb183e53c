"""The DCAT-AP 3 export read back with rdflib: every mandatory (and the recommended ones we
fill) property of the catalogue, its datasets, distributions and publishers, in all three
serialisations; hydra paging; the table schema of the information items."""

from __future__ import annotations

import warnings

import pytest
from rdflib import Graph, Namespace, URIRef
from rdflib.namespace import DCAT, DCTERMS, FOAF, RDF

from govshare.opendata import dcat
from tests.factories import World
from tests.live import LiveHub
from tests.opendata.builders import OpenScene, open_scene

pytestmark = pytest.mark.xdist_group("opendata")
HYDRA = Namespace("http://www.w3.org/ns/hydra/core#")
CSVW = Namespace("http://www.w3.org/ns/csvw#")
FORMATS = {"ttl": "turtle", "rdf": "xml", "jsonld": "json-ld"}

# DCAT-AP 3: mandatory, then the recommended properties this export fills.
CATALOG = [DCTERMS.title, DCTERMS.description, DCTERMS.publisher, DCAT.dataset,
           FOAF.homepage, DCTERMS.language, DCTERMS.license, DCTERMS.issued,
           DCTERMS.modified, DCTERMS.spatial, DCAT.themeTaxonomy]  # fmt: skip
DATASET = [DCTERMS.title, DCTERMS.description, DCAT.contactPoint, DCAT.distribution,
           DCAT.keyword, DCTERMS.publisher, DCTERMS.spatial, DCAT.theme,
           DCTERMS.identifier, DCTERMS.accrualPeriodicity, DCTERMS.issued, DCTERMS.modified,
           DCTERMS.accessRights, DCAT.landingPage]  # fmt: skip
DISTRIBUTION = [DCAT.accessURL, DCTERMS.description, DCTERMS.format, DCTERMS.license,
                URIRef("http://data.europa.eu/r5r/availability")]  # fmt: skip
AGENT = [FOAF.name, DCTERMS.type]


@pytest.fixture(scope="module")
def scene(hub: LiveHub) -> OpenScene:
    return open_scene(World(hub))


def _graph(hub: LiveHub, path: str, fmt: str) -> Graph:
    with hub.client() as c:
        r = c.get(path)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith(dcat.MEDIA_TYPES[fmt].split(";")[0])
    with warnings.catch_warnings():
        # rdflib 7.x's own JSON-LD parser still builds a ConjunctiveGraph internally.
        warnings.filterwarnings("ignore", "ConjunctiveGraph is deprecated", DeprecationWarning)
        return Graph().parse(data=r.content, format=FORMATS[fmt])


def _missing(g: Graph, node: URIRef, props: list[URIRef]) -> list[str]:
    return [str(p) for p in props if g.value(node, p) is None]


@pytest.mark.parametrize("fmt", ["ttl", "rdf", "jsonld"])
def test_catalogue_has_every_mandatory_property(hub: LiveHub, scene: OpenScene, fmt: str) -> None:
    g = _graph(hub, f"/open/catalog.{fmt}", fmt)
    catalogs = list(g.subjects(RDF.type, DCAT.Catalog))
    assert len(catalogs) == 1
    catalog = catalogs[0]
    assert _missing(g, catalog, CATALOG) == []
    assert _missing(g, g.value(catalog, DCTERMS.publisher), AGENT) == []
    datasets = list(g.objects(catalog, DCAT.dataset))
    assert datasets
    for ds in datasets:
        assert _missing(g, ds, DATASET) == [], ds
        assert _missing(g, g.value(ds, DCTERMS.publisher), AGENT) == []
        for dist in g.objects(ds, DCAT.distribution):
            assert (dist, RDF.type, DCAT.Distribution) in g
            assert _missing(g, dist, DISTRIBUTION) == [], dist
    view = g.value(catalog, HYDRA.view)
    assert (view, RDF.type, HYDRA.PartialCollectionView) in g
    assert int(g.value(catalog, HYDRA.totalItems)) == len(datasets)  # one page here


def test_a_dataset_maps_the_catalog_metadata(hub: LiveHub, scene: OpenScene) -> None:
    slug = scene.open_plain["slug"]
    g = _graph(hub, f"/open/datasets/{slug}.ttl", "ttl")
    node = URIRef(f"{hub.base_url}/open/datasets/{slug}")
    assert str(g.value(node, DCTERMS.title)) == scene.open_plain["name"]
    assert g.value(node, DCTERMS.title).language == "zh"
    assert str(g.value(node, DCTERMS.identifier)) == scene.open_plain["code"]
    assert str(g.value(node, DCTERMS.accrualPeriodicity)).endswith("/frequency/MONTHLY")
    assert str(g.value(node, DCTERMS.accessRights)).endswith("/access-right/PUBLIC")
    formats = {
        str(g.value(d, DCTERMS.format)).rsplit("/", 1)[1]
        for d in g.objects(node, DCAT.distribution)
    }
    assert formats == {"CSV", "XLSX", "JSON"}
    csv = URIRef(f"{node}/distribution/csv")
    schema = g.value(csv, CSVW.tableSchema)
    columns = list(g.items(g.value(schema, CSVW.column)))
    assert [str(g.value(c, CSVW.name)) for c in columns] == ["sfzhm", "xm", "jzdz", "djrq"]
    assert str(g.value(columns[3], CSVW.datatype)).endswith("#date")
    assert str(g.value(schema, CSVW.primaryKey)) == "sfzhm"
    conditional = scene.open_conditional["slug"]
    g = _graph(hub, f"/open/datasets/{conditional}.jsonld", "jsonld")
    node = URIRef(f"{hub.base_url}/open/datasets/{conditional}")
    assert str(g.value(node, DCTERMS.accessRights)).endswith("/access-right/RESTRICTED")


def test_catalogue_pages_with_hydra(
    hub: LiveHub, scene: OpenScene, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(dcat, "PAGE_SIZE", 2)
    first = _graph(hub, "/open/catalog.ttl", "ttl")
    catalog = next(first.subjects(RDF.type, DCAT.Catalog))
    total = int(first.value(catalog, HYDRA.totalItems))
    view = first.value(catalog, HYDRA.view)
    pages = -(-total // 2)
    assert str(first.value(view, HYDRA.last)).endswith(f"page={pages}")
    seen: list[str] = []
    page = 1
    while True:
        g = _graph(hub, f"/open/catalog.ttl?page={page}", "ttl")
        catalog = next(g.subjects(RDF.type, DCAT.Catalog))
        seen += [str(d) for d in g.objects(catalog, DCAT.dataset)]
        nxt = g.value(g.value(catalog, HYDRA.view), HYDRA.next)
        if nxt is None:
            break
        page += 1
    assert page == pages
    assert len(seen) == len(set(seen)) == total
    with hub.client() as c:
        assert c.get(f"/open/catalog.ttl?page={pages + 1}").status_code == 404
        assert c.get("/open/catalog.ttl?page=0").status_code == 400
        assert c.get("/open/catalog.ttl?page=x").status_code == 400
        assert c.get("/open/catalog.csv").status_code == 404
        assert c.get(f"/open/datasets/{scene.closed['slug']}.ttl").status_code == 404
