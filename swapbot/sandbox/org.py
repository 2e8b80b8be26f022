"""The simulated Salesforce org: objects with typed fields, records with Ids and SystemModstamp.

Records live in `_hcsandbox.sf_record` (one row per record, fields in a jsonb document), so a
load, a poll or a write is plain SQL against the same database the mapped tables live in.
"""

from __future__ import annotations

from typing import Literal

from psycopg import sql
from pydantic import BaseModel, Field

FieldType = Literal[
    "id",
    "string",
    "picklist",
    "email",
    "phone",
    "textarea",
    "boolean",
    "datetime",
    "date",
    "double",
    "currency",
    "int",
    "reference",
]

# Fields every object carries; HC maps Id to the `sfid` column.
STANDARD_FIELDS = ("Id", "IsDeleted", "SystemModstamp", "CreatedDate")


class FieldSpec(BaseModel):
    name: str
    type: FieldType = "string"
    length: int = 255
    references: str | None = None  # object name, for reference fields
    external_id: bool = False
    values: list[str] = Field(default_factory=list)  # picklist values

    @property
    def column(self) -> str:
        return "sfid" if self.name == "Id" else self.name.lower()

    @property
    def pg_type(self) -> str:
        """The column type HC gives this field (lower-cased names, varchar for text)."""
        match self.type:
            case "id" | "reference":
                return "varchar(18)"
            case "boolean":
                return "boolean"
            case "datetime":
                return "timestamp"
            case "date":
                return "date"
            case "double" | "currency":
                return "double precision"
            case "int":
                return "integer"
            case _:
                return f"varchar({self.length})"


class ObjectSpec(BaseModel):
    """A Salesforce object of the simulated org and how many records it starts with."""

    name: str
    key_prefix: str = Field(pattern=r"^[0-9a-zA-Z]{3}$")
    fields: list[FieldSpec]
    records: int = 0

    def field(self, name: str) -> FieldSpec | None:
        for f in self.fields:
            if f.name.lower() == name.lower():
                return f
        return None

    def describe(self) -> dict:
        """The shape of `GET /connections/{id}/schemas/{Object}`."""
        return {
            "name": self.name,
            "fields": [
                {
                    "name": f.name,
                    "type": f.type,
                    "length": f.length,
                    "required": f.name in ("Id",),
                    "external_id": f.external_id,
                    "reference_to": [f.references] if f.references else [],
                }
                for f in self.fields
            ],
        }


def standard_fields() -> list[FieldSpec]:
    return [
        FieldSpec(name="Id", type="id"),
        FieldSpec(name="IsDeleted", type="boolean"),
        FieldSpec(name="SystemModstamp", type="datetime"),
        FieldSpec(name="CreatedDate", type="datetime"),
    ]


def sfid_sql(prefix: str, n: sql.Composable) -> sql.Composed:
    """An 18-character Salesforce-shaped Id for record number n of an object."""
    return sql.SQL("({} || 'Hs' || lpad(to_hex({}), 10, '0') || 'AAA')").format(
        sql.Literal(prefix), n
    )


def _value_sql(
    f: FieldSpec, g: sql.Composable, prefixes: dict[str, tuple[str, int]]
) -> sql.Composable:
    """A generated value for record number g, deterministic so scenarios are repeatable."""
    match f.type:
        case "reference":
            prefix, count = prefixes.get(f.references or "", ("000", 1))
            return sfid_sql(prefix, sql.SQL("(1 + {} % {})").format(g, sql.Literal(max(count, 1))))
        case "boolean":
            return sql.SQL("({} % 2 = 0)").format(g)
        case "datetime":
            return sql.SQL(
                "to_char(now() - ({} || ' minutes')::interval, 'YYYY-MM-DD\"T\"HH24:MI:SS')"
            ).format(g)
        case "date":
            return sql.SQL("(current_date + ({} % 365)::int)::text").format(g)
        case "double" | "currency":
            return sql.SQL("(({} * 37) % 100000)::float8").format(g)
        case "int":
            return sql.SQL("({} % 1000)").format(g)
        case "email":
            return sql.SQL("('user' || {} || '@example.com')").format(g)
        case "phone":
            return sql.SQL("('+1 555 ' || lpad(({} % 10000)::text, 4, '0'))").format(g)
        case "picklist":
            values = f.values or ["Alpha", "Beta", "Gamma"]
            return sql.SQL("({}::text[])[1 + {} % {}]").format(
                sql.Literal(values), g, sql.Literal(len(values))
            )
        case _:
            return sql.SQL("left({} || ' ' || {}, {})").format(
                sql.Literal(f.name), g, sql.Literal(f.length)
            )


def generate_records(
    conn,
    obj: ObjectSpec,
    count: int,
    prefixes: dict[str, tuple[str, int]],
    start: int = 1,
    *,
    fresh: bool = False,
) -> None:
    """Insert `count` records numbered from `start` into the org, in one statement.

    Scenario records get SystemModstamps spread over the past; `fresh` ones (created while the
    sandbox runs) are stamped now, so the next poll picks them up.
    """
    if count <= 0:
        return
    g = sql.Identifier("g")
    pairs = []
    for f in obj.fields:
        if f.name in STANDARD_FIELDS:
            continue
        pairs += [sql.Literal(f.name), _value_sql(f, g, prefixes)]
    pairs += [
        sql.Literal("CreatedDate"),
        _value_sql(FieldSpec(name="CreatedDate", type="datetime"), g, {}),
    ]
    stmt = sql.SQL(
        "INSERT INTO _hcsandbox.sf_record (object_name, sfid, data, systemmodstamp, isdeleted) "
        "SELECT {obj}, {sfid}, jsonb_build_object({pairs}), {stamp}, false "
        "FROM generate_series({start}::bigint, {end}::bigint) AS g"
    ).format(
        obj=sql.Literal(obj.name),
        stamp=sql.SQL("now()" if fresh else "now() - (g || ' seconds')::interval"),
        sfid=sfid_sql(obj.key_prefix, g),
        pairs=sql.SQL(", ").join(pairs),
        start=sql.Literal(start),
        end=sql.Literal(start + count - 1),
    )
    conn.execute(stmt)


def column_expr(f: FieldSpec, rec: str = "r") -> sql.Composable:
    """How a mapped column's value is read out of an `sf_record` row."""
    r = sql.Identifier(rec)
    match f.name:
        case "Id":
            return sql.SQL("{}.sfid").format(r)
        case "IsDeleted":
            return sql.SQL("{}.isdeleted").format(r)
        case "SystemModstamp":
            return sql.SQL("{}.systemmodstamp::timestamp").format(r)
    raw = sql.SQL("({}.data ->> {})").format(r, sql.Literal(f.name))
    return sql.SQL("{}::{}").format(raw, sql.SQL(f.pg_type))


def field_value_json(f: FieldSpec, value) -> object:
    """A Postgres column value as the org stores it (text for dates, numbers as numbers)."""
    if value is None:
        return None
    if f.type in ("datetime",):
        return value.strftime("%Y-%m-%dT%H:%M:%S") if hasattr(value, "strftime") else str(value)
    if f.type == "date":
        return str(value)
    if f.type in ("double", "currency", "int"):
        return float(value) if f.type != "int" else int(float(value))
    if f.type == "boolean":
        return value in (True, "t", "true", "True", "1")
    return str(value)
