"""From a definition to a plan: every reference checked against the catalog, the shared
stores and the owning department's grants, then compiled to one DuckDB query.

A plan is what a run needs and nothing else: per input, the store's table, the columns
to export, the grant's row filter and masking; and the query over the inputs' snapshot
files. Planning again at run time re-checks the grants, so a revoked grant stops a
scheduled job at once.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import date, datetime
from typing import Any

from sqlalchemy import inspect, select
from sqlalchemy.orm import Session

from govshare.basedata.assembly import VERSION
from govshare.catalog.models import Resource
from govshare.compare.errors import InvalidJob
from govshare.compare.schemas import Condition, Definition, JobLink, Normalize
from govshare.compare.sql import InputPlan, normalised, quote
from govshare.sharing.models import SharedStore, SharingGrant, SharingMode
from govshare.sharing.store import SharedDatabase

_bad = InvalidJob.about

# The kind of value each catalog data type (信息项数据类型) compares as.
KINDS = {"N": "number", "Y": "number", "B": "number", "I": "number", "F": "number"}
KINDS |= {"D": "date", "T": "datetime"}
ORDERED = {"number", "date", "datetime"}
# Bulk reading for a comparison is a use of rows: 查询 or 订阅, not 核验 alone.
READING_MODES = {str(SharingMode.QUERY), str(SharingMode.SUBSCRIPTION)}


@dataclass(frozen=True)
class Plan:
    inputs: list[InputPlan]
    sql: str  # over views named after the aliases (see ``views``)
    params: list[Any]
    output: list[str]
    labels: dict[str, str]  # "alias.item" → 资源名·信息项名
    case_key: list[str]
    amount: str | None
    masking: dict[str, str] = field(default_factory=dict)  # "alias.item" → rule


# -- checking -------------------------------------------------------------------------------


def _stored_items(db: SharedDatabase, store: SharedStore) -> set[str] | None:
    table = db.table(store.table_name)
    if table is not None:
        return {str(c.name) for c in table.columns}
    if store.source_task_id is not None:
        return set(store.mapping.values())  # the first package has not arrived yet
    return None


def _joinable(db: SharedDatabase, store: SharedStore) -> set[str]:
    """Items a join may read the store by: its key and the columns it has an index on
    (the primary key included)."""
    found = {store.key_item}
    table = db.table(store.table_name)
    if table is None:
        return found
    found |= {str(c.name) for c in table.primary_key.columns}
    for ix in inspect(db.engine).get_indexes(store.table_name):
        names = [n for n in ix["column_names"] if n]
        if names:
            found.add(names[0])  # the leading column of an index serves an equality
    return found


def _grant(
    session: Session, department_id: int, resource: Resource, items: list[str], today: date, at: str
) -> SharingGrant | None:
    """The owning department reads its own stores freely; any other store needs a grant
    in force for reading rows that covers every item used."""
    if resource.provider_department_id == department_id:
        return None
    grants = session.scalars(
        select(SharingGrant)
        .where(
            SharingGrant.consumer_department_id == department_id,
            SharingGrant.resource_id == resource.id,
            SharingGrant.revoked.is_(False),
            SharingGrant.expires_on >= today,
        )
        .order_by(SharingGrant.id.desc())
    ).all()
    reading = [g for g in grants if READING_MODES & set(g.modes)]
    if not reading:
        raise _bad(
            f"负责部门未获得目录「{resource.name}」的查询或订阅授权，不能用于比对",
            at,
            "无有效授权" if not grants else "授权仅限核验",
        )
    for g in reading:
        if set(items) <= set(g.items):
            return g
    missing = sorted(set(items) - set(reading[0].items))
    raise _bad(
        f"目录「{resource.name}」的授权不含比对用到的信息项", f"{at}.items", "、".join(missing)
    )


@dataclass
class _Checked:
    plan: InputPlan
    match: str = "driving"  # driving | present | absent | counted


def plan(
    session: Session, db: SharedDatabase, definition: Definition, department_id: int, today: date
) -> Plan:
    """Check ``definition`` for ``department_id`` and compile it; raises ``InvalidJob``
    naming the field that is wrong."""
    checked: dict[str, _Checked] = {}
    for n, spec in enumerate(definition.inputs):
        at = f"inputs[{n}]"
        if spec.alias in checked:
            raise _bad("输入别名重复", f"{at}.alias", spec.alias)
        resource = session.scalar(select(Resource).where(Resource.code == spec.resource))
        if resource is None or not resource.listed:
            raise _bad(
                "比对输入须是已发布的目录", f"{at}.resource", f"{spec.resource} 不存在或未发布"
            )
        store = session.scalar(select(SharedStore).where(SharedStore.resource_id == resource.id))
        if store is None:
            raise _bad(f"目录「{resource.name}」没有共享信息库", f"{at}.resource", spec.resource)
        if len(set(spec.items)) != len(spec.items):
            raise _bad("信息项重复", f"{at}.items", "、".join(spec.items))
        by_code = {item.code: item for item in resource.items}
        unknown = [i for i in spec.items if i not in by_code]
        if unknown:
            raise _bad(f"目录「{resource.name}」没有这些信息项", f"{at}.items", "、".join(unknown))
        stored = _stored_items(db, store)
        if stored is None:
            raise _bad(f"基础库「{resource.name}」尚未归集", f"{at}.resource", spec.resource)
        absent = [i for i in spec.items if i not in stored]
        if absent:
            raise _bad(
                f"共享信息库「{resource.name}」未保存这些信息项", f"{at}.items", "、".join(absent)
            )
        grant = _grant(session, department_id, resource, spec.items, today, at)
        checked[spec.alias] = _Checked(
            InputPlan(
                alias=spec.alias,
                store_id=store.id,
                resource_code=resource.code,
                resource_name=resource.name,
                table_name=store.table_name,
                key_item=store.key_item,
                columns=list(spec.items),
                kinds={i: KINDS.get(by_code[i].data_type, "text") for i in spec.items},
                names={i: by_code[i].name for i in spec.items},
                row_filter=grant.row_filter if grant else None,
                masking=dict(grant.masking) if grant else {},
                grant_id=grant.id if grant else None,
                version_column=VERSION if store.source_task_id is None else None,
                rows_hint=store.row_count,
                sealed=dict(store.sealed_items or {}),
                seal_key=store.seal_key or 1,
            )
        )
    aliases = list(checked)
    checked[aliases[0]].match = "driving"
    _check_links(db, session, definition, checked)
    usable = {a for a, c in checked.items() if c.match in ("driving", "present")}

    def ref(value: str, at: str) -> tuple[InputPlan, str]:
        alias, _, item = value.partition(".")
        found = checked.get(alias)
        if found is None:
            raise _bad("引用了未定义的输入", at, alias)
        if alias not in usable:
            raise _bad("不存在匹配 (absent) 或计数的输入没有可引用的值", at, value)
        if item not in found.plan.columns:
            raise _bad(f"输入 {alias} 没有列出信息项 {item}", at, value)
        return found.plan, item

    for n, cond in enumerate(definition.conditions):
        _check_condition(cond, ref, f"conditions[{n}]")
    for n, out in enumerate(definition.output):
        ref(out, f"output[{n}]")
    if len(set(definition.output)) != len(definition.output):
        raise _bad("输出信息项重复", "output", "、".join(definition.output))
    first = checked[aliases[0]].plan
    case_key = definition.case_key or [f"{first.alias}.{first.key_item}"]
    for n, key in enumerate(case_key):
        ref(key, f"case_key[{n}]" if definition.case_key else "case_key")
    if definition.amount:
        owner, item = ref(definition.amount, "amount")
        if owner.kinds[item] != "number":
            raise _bad("涉及金额须是数值型信息项", "amount", definition.amount)
    required = _required(definition)
    inputs = [replace(c.plan, required=tuple(sorted(required[a]))) for a, c in checked.items()]
    sql, params = _compile(definition, checked, case_key)
    labels = {
        f"{i.alias}.{item}": f"{i.resource_name}·{i.names[item]}"
        for i in inputs
        for item in i.columns
    }
    masking = {f"{i.alias}.{item}": rule for i in inputs for item, rule in i.masking.items()}
    return Plan(
        inputs=inputs,
        sql=sql,
        params=params,
        output=list(definition.output),
        labels=labels,
        case_key=case_key,
        amount=definition.amount,
        masking=masking,
    )


def _required(definition: Definition) -> dict[str, set[str]]:
    """Per input, the columns no hit can have empty: keys of joins that must match and
    items a condition compares (a comparison with nothing is never true). A row empty
    in one of them cannot change the result, so the snapshot leaves it out — for a job
    on the deceased, the people without a date of death. Keys of the driving side of an
    absent link stay: a row without one has no match, which is what that link asks."""
    required: dict[str, set[str]] = {i.alias: set() for i in definition.inputs}
    for link in definition.links:
        for pair in link.on:
            alias, _, item = pair.left.partition(".")
            if link.match == "present":
                required[alias].add(item)
            required[link.input].add(pair.right)
    for cond in definition.conditions:
        if cond.op == "is_null":
            continue
        for ref in (cond.left, cond.right):
            if ref:
                alias, _, item = ref.partition(".")
                required[alias].add(item)
    return required


def _check_links(
    db: SharedDatabase, session: Session, definition: Definition, checked: dict[str, _Checked]
) -> None:
    aliases = list(checked)
    seen = {aliases[0]}
    linked: set[str] = set()
    for n, link in enumerate(definition.links):
        at = f"links[{n}]"
        if link.input not in checked or link.input == aliases[0]:
            raise _bad("关联的输入须是第一个输入以外已定义的输入", f"{at}.input", link.input)
        if link.input in linked:
            raise _bad("每个输入只能关联一次", f"{at}.input", link.input)
        if link.count is not None and link.match != "present":
            raise _bad("只有存在匹配 (present) 的关联可以计数", f"{at}.count", link.match)
        target = checked[link.input].plan
        store = session.get(SharedStore, target.store_id)
        assert store is not None
        joinable = _joinable(db, store)
        for k, pair in enumerate(link.on):
            alias, _, item = pair.left.partition(".")
            if alias not in seen or checked[alias].match not in ("driving", "present"):
                raise _bad(
                    "关联键左侧须是此前已关联且存在匹配的输入", f"{at}.on[{k}].left", pair.left
                )
            left = checked[alias].plan
            if item not in left.columns:
                raise _bad(f"输入 {alias} 没有列出信息项 {item}", f"{at}.on[{k}].left", pair.left)
            if pair.right not in target.columns:
                raise _bad(
                    f"输入 {link.input} 没有列出信息项 {pair.right}",
                    f"{at}.on[{k}].right",
                    pair.right,
                )
            if pair.right not in joinable:
                raise _bad(
                    f"「{target.resource_name}」的 {pair.right} 不是查询键也没有索引，不能作关联键",
                    f"{at}.on[{k}].right",
                    pair.right,
                )
            if left.kinds[item] != target.kinds[pair.right]:
                raise _bad(
                    "关联键两侧类型不一致",
                    f"{at}.on[{k}]",
                    f"{pair.left} ({_type_name(left.kinds[item])}) 与 "
                    f"{link.input}.{pair.right} ({_type_name(target.kinds[pair.right])})",
                )
        checked[link.input].match = "counted" if link.count else link.match
        seen.add(link.input)
        linked.add(link.input)
    unlinked = [a for a in aliases[1:] if a not in linked]
    if unlinked:
        raise _bad("除第一个输入外，每个输入都须关联", "links", "、".join(unlinked))


def _type_name(kind: str) -> str:
    return {"number": "数值型", "date": "日期型", "datetime": "日期时间型"}.get(kind, "字符型")


def _check_condition(cond: Condition, ref: Any, at: str) -> None:
    left, item = ref(cond.left, f"{at}.left")
    kind = left.kinds[item]
    if cond.op in ("is_null", "not_null"):
        if cond.right is not None or cond.value is not None:
            raise _bad("is_null / not_null 不带比较对象", at, cond.op)
        return
    if (cond.right is None) == (cond.value is None):
        raise _bad("条件须给出 right (信息项) 或 value (常量) 之一", at, cond.op)
    if cond.op not in ("=", "!=") and kind not in ORDERED:
        raise _bad("大小比较只适用于数值、日期或日期时间型", f"{at}.left", cond.left)
    if cond.days and kind not in ("date", "datetime"):
        raise _bad("days 只适用于日期比较", f"{at}.days", str(cond.days))
    if cond.right is not None:
        right, ritem = ref(cond.right, f"{at}.right")
        rkind = right.kinds[ritem]
        dates = {kind, rkind} <= {"date", "datetime"}
        if rkind != kind and not dates:
            raise _bad(
                "条件两侧类型不一致",
                at,
                f"{cond.left} ({_type_name(kind)}) 与 {cond.right} ({_type_name(rkind)})",
            )
        return
    try:
        literal(kind, cond.value)
    except (TypeError, ValueError, OverflowError):
        raise _bad(f"常量不是{_type_name(kind)}的值", f"{at}.value", str(cond.value)) from None


def literal(kind: str, value: Any) -> Any:
    """A condition's constant as the kind it compares with (raises ValueError)."""
    if kind == "number":
        if isinstance(value, bool):
            raise ValueError(value)
        return float(value)
    if kind == "date":
        return date.fromisoformat(str(value))
    if kind == "datetime":
        return datetime.fromisoformat(str(value))
    return str(value)


# -- compiling ------------------------------------------------------------------------------


def _col(ref: str) -> str:
    alias, _, item = ref.partition(".")
    return f"{quote(alias)}.{quote(item)}"


def _key_steps(definition: Definition, ref: str) -> list[str]:
    """How a case key is folded: as the links that join on it fold it."""
    steps: set[Normalize] = set()
    for link in definition.links:
        for pair in link.on:
            if ref in (pair.left, f"{link.input}.{pair.right}"):
                steps |= set(link.normalize)
    chosen = steps or {Normalize.WIDTH, Normalize.TRIM, Normalize.UPPER}
    return [str(s) for s in sorted(chosen, key=list(Normalize).index)]


def _join(link: JobLink, kinds: dict[str, dict[str, str]]) -> tuple[str, list[Any]]:
    target = quote(link.input)
    view = quote("in_" + link.input)

    def key(ref: str) -> str:
        alias, _, item = ref.partition(".")
        expr = _col(ref)
        steps = [str(s) for s in link.normalize]
        return normalised(expr, steps) if kinds[alias][item] == "text" else expr

    if link.count is not None:
        inner = ", ".join(
            f"{key(f'{link.input}.{p.right}')} AS k{k}" for k, p in enumerate(link.on)
        )
        groups = ", ".join(str(k + 1) for k in range(len(link.on)))
        on = " AND ".join(f"{target}.k{k} = {key(p.left)}" for k, p in enumerate(link.on))
        return (
            f"JOIN (SELECT {inner}, count(*) AS n FROM {view} AS {target} GROUP BY {groups}) "
            f"AS {target} "
            f"ON {on} AND {target}.n {link.count.op} ?",
            [link.count.value],
        )
    on = " AND ".join(f"{key(p.left)} = {key(f'{link.input}.{p.right}')}" for p in link.on)
    kind = {"present": "JOIN", "absent": "ANTI JOIN"}[link.match]
    return f"{kind} {view} AS {target} ON {on}", []


def _condition(cond: Condition, kinds: dict[str, dict[str, str]]) -> tuple[str, list[Any]]:
    left = _col(cond.left)
    alias, _, item = cond.left.partition(".")
    kind = kinds[alias][item]
    if cond.op == "is_null":
        return f"{left} IS NULL", []
    if cond.op == "not_null":
        return f"{left} IS NOT NULL", []
    op = "<>" if cond.op == "!=" else cond.op
    if cond.right is None:
        cast = {"number": "DOUBLE", "date": "DATE", "datetime": "TIMESTAMP"}.get(kind, "VARCHAR")
        return f"{left} {op} CAST(? AS {cast})", [str(literal(kind, cond.value))]
    ralias, _, ritem = cond.right.partition(".")
    right = _col(cond.right)
    if kind != kinds[ralias][ritem]:  # a date against a date and time: both as timestamps
        left, right = f"CAST({left} AS TIMESTAMP)", f"CAST({right} AS TIMESTAMP)"
    if cond.days:
        right = f"({right} + INTERVAL ({int(cond.days)}) DAY)"
    return f"{left} {op} {right}", []


def _compile(
    definition: Definition, checked: dict[str, _Checked], case_key: list[str]
) -> tuple[str, list[Any]]:
    kinds = {a: c.plan.kinds for a, c in checked.items()}
    first = definition.inputs[0].alias
    params: list[Any] = []
    joins = []
    for link in definition.links:
        sql, p = _join(link, kinds)
        joins.append(sql)
        params += p
    conds = []
    for cond in definition.conditions:
        sql, p = _condition(cond, kinds)
        conds.append(sql)
        params += p
    keys = [
        f"{normalised(_col(k), _key_steps(definition, k))} AS k{n}"
        if kinds[k.partition(".")[0]][k.partition(".")[2]] == "text"
        else f"{_col(k)} AS k{n}"
        for n, k in enumerate(case_key)
    ]
    outs = [f"{_col(o)} AS o{n}" for n, o in enumerate(definition.output)]
    amount = [f"{_col(definition.amount)} AS amt"] if definition.amount else []
    where = f" WHERE {' AND '.join(conds)}" if conds else ""
    hits = (
        f"SELECT {', '.join(keys + outs + amount)} FROM {quote('in_' + first)} AS {quote(first)} "
        + " ".join(joins)
        + where
    )
    group = ", ".join(f"k{n}" for n in range(len(case_key)))
    agg = [f"min(o{n}) AS o{n}" for n in range(len(definition.output))]
    agg += ["sum(amt) AS amt"] if definition.amount else ["NULL::DOUBLE AS amt"]
    sql = (
        f"WITH hits AS ({hits}) SELECT {group}, {', '.join(agg)}, count(*) AS n "
        f"FROM hits GROUP BY {group} ORDER BY {group}"
    )
    return sql, params
