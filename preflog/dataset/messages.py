"""Chat messages as trainers take them: the SQL that shapes a build's messages, tools and images.

A log of plain text messages builds as it always did: each message ``{role, content}``, in the JSON lines and
in the Parquet shards alike. A build that holds tool calls, tools or images (:func:`shape_of` looks once) writes
its messages in the chat shape of TRL and transformers' chat templates instead, each message a JSON object
whose empty keys are left out (``datasets``' ``Json`` type in the shards, so no spurious ``None`` appears):

* an assistant tool call is ``{"type": "function", "function": {"name", "arguments": {parsed JSON}}}`` (with
  its ``id`` when it has one), a tool result ``{"role": "tool", "name", "content", "tool_call_id"}``;
* ``tools`` is the list of function specs (parsed), the column TRL's trainers pass to the chat template;
* with images, every message's content is a list of parts (``{"type": "image"}`` per image, then
  ``{"type": "text", "text"}``) and ``images`` lists the prompt's images as ``{"path"}`` (TRL's vision
  layout, which ``datasets``' ``Image`` feature opens); an answer's images are not rendered (its content is
  its text part only), as the ``images`` column holds the prompt's.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pyarrow as pa

__all__ = [
    "MESSAGE_COLUMNS",
    "PLAIN",
    "Shape",
    "as_json_types",
    "extra_columns",
    "image_path",
    "json_text",
    "messages_sql",
    "shape_of",
    "shard_select",
    "struct_fields",
]

#: the message columns of a dataset row, and the role and text column of their single-message fallback
MESSAGE_COLUMNS = {
    "prompt_messages": ("user", "prompt"),
    "chosen_messages": ("assistant", "chosen"),
    "rejected_messages": ("assistant", "rejected"),
}
_EXTRA = ("name", "tool_calls", "tool_call_id", "images")


@dataclass(frozen=True)
class Shape:
    """How a build writes its messages: plain ``{role, content}`` unless it holds tool calls, tools or images."""

    fields: frozenset[str] = frozenset()  # the ChatMessage fields the relation has, of name, tool_calls, ...
    rich: bool = False  # messages are JSON objects in TRL's chat shape
    tools: bool = False  # a ``tools`` column is written
    images: bool = False  # content as parts and an ``images`` column

    def describe(self) -> dict[str, bool]:
        """What the manifest says of the shape (empty for a plain build: its manifest is unchanged)."""
        return {"chat_shape": True, "tools": self.tools, "images": self.images} if self.rich else {}


#: the shape of a build of plain text messages
PLAIN = Shape()


def struct_fields(type_text: str) -> frozenset[str]:
    """The field names of a DuckDB ``STRUCT(...)[]`` type named in ``type_text`` that are of :data:`_EXTRA`."""
    words = set(type_text.replace('"', " ").replace("(", " ").replace(",", " ").split())
    return frozenset(f for f in _EXTRA if f in words)


def shape_of(con: Any, relation: str) -> Shape:
    """The shape of ``relation``'s messages: rich when any message has a name, tool call, image or the row tools."""
    described = {str(r[0]): str(r[1]) for r in con.execute(f"DESCRIBE {relation}").fetchall()}
    fields = frozenset().union(*(struct_fields(described.get(c, "")) for c in MESSAGE_COLUMNS))
    has_tools = "tools" in described
    checks = []
    for column in MESSAGE_COLUMNS:
        if column in described:
            any_extra = " OR ".join(
                f"len(coalesce(m.{f}, [])) > 0" if f in ("tool_calls", "images") else f"m.{f} IS NOT NULL"
                for f in sorted(fields)
            )
            if any_extra:
                checks.append(f"len(list_filter(coalesce({column}, []), lambda m: {any_extra})) > 0")
    images = "FALSE"
    if "images" in fields and "prompt_messages" in described:
        images = "len(list_filter(coalesce(prompt_messages, []), lambda m: len(coalesce(m.images, [])) > 0)) > 0"
    tools = "coalesce(tools, '') NOT IN ('', '[]')" if has_tools else "FALSE"
    rich = " OR ".join([*checks, tools]) if checks or has_tools else "FALSE"
    found = con.execute(f"SELECT bool_or({rich}), bool_or({tools}), bool_or({images}) FROM {relation}").fetchall()
    is_rich, with_tools, with_images = (bool(v) for v in found[0])
    return Shape(fields, is_rich, with_tools, with_images)


def json_text(text: str) -> str:
    """A JSON value from JSON text, or the text as a JSON string when it does not parse (never a failed build)."""
    return f"CASE WHEN json_valid({text}) THEN json({text}) ELSE to_json({text}) END"


def _content(shape: Shape, m: str, pictures_too: bool = True) -> str:
    """The SQL of message ``m``'s content: its text, or with images a list of parts.

    An answer's parts are its text only (``pictures_too`` false): TRL's ``images`` column holds the prompt's.
    """
    if not shape.images:
        return f"{m}.content"
    if not pictures_too:
        return f"to_json([json_object('type', 'text', 'text', {m}.content)])"
    pictures = f'list_transform(coalesce({m}.images, []), lambda i: \'{{"type":"image"}}\'::JSON)'
    return f"to_json(list_concat({pictures}, [json_object('type', 'text', 'text', {m}.content)]))"


def _message_json(shape: Shape, m: str, role: str | None = None, pictures_too: bool = True) -> str:
    """The SQL of message ``m`` (or, with ``role``, of a single message whose text is ``m``) as a JSON object."""
    if role is not None:
        content = f"to_json([json_object('type', 'text', 'text', {m})])" if shape.images else m
        return f"json_object('role', '{role}', 'content', {content})"
    pairs = [f"'role', {m}.role", f"'content', {_content(shape, m, pictures_too)}"]
    if "name" in shape.fields:
        pairs.append(f"'name', {m}.name")
    if "tool_calls" in shape.fields:
        call = (
            "json_object('id', c.id, 'type', 'function', 'function', "
            f"json_object('name', c.name, 'arguments', {json_text('c.arguments')}))"
        )
        calls = f"to_json(list_transform({m}.tool_calls, lambda c: {call}))"
        pairs.append(f"'tool_calls', CASE WHEN len(coalesce({m}.tool_calls, [])) > 0 THEN {calls} END")
    if "tool_call_id" in shape.fields:
        pairs.append(f"'tool_call_id', {m}.tool_call_id")
    return f"json_merge_patch('{{}}', json_object({', '.join(pairs)}))"  # drops the null keys


def messages_sql(shape: Shape, column: str, fallback: bool = True) -> str:
    """The SQL of message ``column`` as trainers take it, or one message of the row's text when there are none.

    Plain: a list of ``{role, content}`` structs. Rich: a list of JSON objects (:func:`_message_json`). Without
    ``fallback``, a row without messages keeps them null (the Parquet shards' columns are the log's).
    """
    role, text = MESSAGE_COLUMNS[column]
    if not shape.rich:
        each, alone = "{'role': m.role, 'content': m.content}", f"{{'role': '{role}', 'content': {text}}}"
    else:
        each = _message_json(shape, "m", pictures_too=column == "prompt_messages")
        alone = _message_json(shape, text, role)
    if not fallback:
        return f"list_transform({column}, lambda m: {each})"
    return (
        f"CASE WHEN len(coalesce({column}, [])) > 0 THEN list_transform({column}, lambda m: {each}) ELSE [{alone}] END"
    )


def image_path(uri: str) -> str:
    """What ``datasets`` opens for an image ``uri``: a local path for ``file://``, the URI otherwise."""
    return uri[len("file://") :] if uri.startswith("file://") else uri


_IMAGES = (
    "list_transform(flatten(list_transform(coalesce(prompt_messages, []), lambda m: coalesce(m.images, []))), "
    "lambda i: {'path': CASE WHEN starts_with(i.uri, 'file://') THEN substr(i.uri, 8) ELSE i.uri END})"
)


def extra_columns(shape: Shape) -> tuple[tuple[str, str], ...]:
    """The columns a rich build adds after the trainer's own: ``tools`` (parsed) and ``images``, as (key, SQL)."""
    out: tuple[tuple[str, str], ...] = ()
    if shape.tools:
        out += (("tools", f"CASE WHEN coalesce(tools, '') <> '' THEN {json_text('tools')} END"),)
    if shape.images:
        out += (("images", _IMAGES),)
    return out


def shard_select(shape: Shape) -> str:
    """The select list of a Parquet shard's rows: every column, its messages shaped (:func:`messages_sql`)."""
    replaced = ", ".join(f"{messages_sql(shape, c, fallback=False)} AS {c}" for c in MESSAGE_COLUMNS)
    drop = "tools" if shape.fields or shape.tools else ""
    extra = "".join(f", {sql} AS {key}" for key, sql in extra_columns(shape))
    select = f"* REPLACE ({replaced})" if not drop else f"* EXCLUDE ({drop}) REPLACE ({replaced})"
    return select + extra


def _json_type(t: pa.DataType) -> pa.DataType:
    if pa.types.is_list(t) or pa.types.is_large_list(t):
        return pa.list_(_json_type(t.value_type))
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        return pa.json_()
    return t


#: the Hugging Face features of a rich shard's image column (``datasets`` reads them from the schema's metadata)
_IMAGE_FEATURE = {"_type": "List", "feature": {"_type": "Image"}}


def as_json_types(batch: pa.Table, shape: Shape) -> pa.Table:
    """``batch`` with its rich message lists and ``tools`` typed as JSON (``datasets`` opens them as ``Json``).

    With images, the ``images`` column is declared a list of ``datasets`` ``Image`` in the schema's metadata.
    """
    if not shape.rich:
        return batch
    fields = []
    for f in batch.schema:
        json = f.name in MESSAGE_COLUMNS or f.name == "tools"
        fields.append(pa.field(f.name, _json_type(f.type)) if json else f)
    schema = pa.schema(fields)
    if shape.images:
        images = pa.struct([("bytes", pa.binary()), ("path", pa.string())])
        schema = schema.set(schema.get_field_index("images"), pa.field("images", pa.list_(images)))
        info = {"info": {"features": {"images": _IMAGE_FEATURE}}}
        schema = schema.with_metadata({b"huggingface": _dumps(info).encode()})
        batch = batch.set_column(batch.schema.get_field_index("images"), "images", _with_bytes(batch.column("images")))
    return batch.cast(schema)


def _with_bytes(column: pa.ChunkedArray) -> pa.ChunkedArray:
    """The image list ``[{path}]`` as ``datasets``' Image storage, ``[{bytes: null, path}]``."""
    chunks = []
    for chunk in column.chunks:
        inner = chunk.values
        paths = inner.field("path")
        structs = pa.StructArray.from_arrays([pa.nulls(len(paths), pa.binary()), paths], ["bytes", "path"])
        chunks.append(pa.ListArray.from_arrays(chunk.offsets, structs, mask=chunk.is_null()))
    return pa.chunked_array(chunks, pa.list_(pa.struct([("bytes", pa.binary()), ("path", pa.string())])))


def _dumps(value: Any) -> str:
    import json

    return json.dumps(value, sort_keys=True)
