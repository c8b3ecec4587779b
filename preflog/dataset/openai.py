"""OpenAI's preference (DPO) format in SQL: its fields and its rules (the twin of ``preflog.sinks.export``'s).

OpenAI's DPO fine-tuning takes ``input`` (``messages``, and ``tools``: the function specs the model could call),
``preferred_output`` and ``non_preferred_output``, each output one assistant message, "text inputs and
outputs" only, trained on one turn. Its fine-tuning API reference gives an output assistant message
``tool_calls`` (``{"id", "type": "function", "function": {"name", "arguments": JSON text}}``), so a
single assistant message that calls tools is written (its text may then be empty); a trajectory (tool results,
several steps) is more than one message and left out, and so is a row with an image in its input or outputs.
"""

from __future__ import annotations

from .messages import MESSAGE_COLUMNS, Shape, json_text

__all__ = ["ROLES", "openai_fields", "openai_problem_sql"]

#: the input roles OpenAI's preference format takes
ROLES = "('system', 'developer', 'user', 'assistant')"


def _facts(shape: Shape, column: str) -> str:
    """Each message of ``column`` (or the row's text alone) as ``{role, text, calls, images}``: what rules need."""
    role, text = MESSAGE_COLUMNS[column]
    calls = "len(coalesce(m.tool_calls, []))" if "tool_calls" in shape.fields else "0"
    images = "len(coalesce(m.images, []))" if "images" in shape.fields else "0"
    # whether a message has text, not its text: the rules never copy the texts
    each = f"{{'role': m.role, 'text': coalesce(m.content, '') <> '', 'calls': {calls}, 'images': {images}}}"
    alone = f"{{'role': '{role}', 'text': coalesce({text}, '') <> '', 'calls': 0, 'images': 0}}"
    return (
        f"CASE WHEN len(coalesce({column}, [])) > 0 THEN list_transform({column}, lambda m: {each}) ELSE [{alone}] END"
    )


def _message(shape: Shape, column: str) -> str:
    """The SQL of ``column``'s messages as OpenAI takes them (``{role, content}``, tool calls when there are)."""
    role, text = MESSAGE_COLUMNS[column]
    plain = f"CASE WHEN len(coalesce({column}, [])) > 0 THEN list_transform({column}, lambda m: {{'role': m.role, " \
        f"'content': m.content}}) ELSE [{{'role': '{role}', 'content': {text}}}] END"  # fmt: skip
    if not shape.rich or "tool_calls" not in shape.fields:
        return plain
    call = (
        "json_object('id', c.id, 'type', 'function', 'function', json_object('name', c.name, 'arguments', c.arguments))"
    )
    listed = f"to_json(list_transform(m.tool_calls, lambda c: {call}))"
    calls = f"CASE WHEN len(coalesce(m.tool_calls, [])) > 0 THEN {listed} END"
    name = ", 'name', m.name" if "name" in shape.fields else ""
    each = f"json_merge_patch('{{}}', json_object('role', m.role, 'content', m.content{name}, 'tool_calls', {calls}))"
    alone = f"json_object('role', '{role}', 'content', {text})"
    return (
        f"CASE WHEN len(coalesce({column}, [])) > 0 THEN list_transform({column}, lambda m: {each}) ELSE [{alone}] END"
    )


def openai_fields(shape: Shape) -> tuple[tuple[str, str], ...]:
    """OpenAI's own fields as (key, SQL): ``input`` (with ``tools`` when the row has them) and the two outputs."""
    messages = _message(shape, "prompt_messages")
    source = f"{{'messages': {messages}}}"
    if shape.tools:
        tools = f"CASE WHEN coalesce(tools, '') NOT IN ('', '[]') THEN {json_text('tools')} END"
        source = f"json_merge_patch('{{}}', json_object('messages', to_json({messages}), 'tools', {tools}))"
    return (
        ("input", source),
        ("preferred_output", _message(shape, "chosen_messages")),
        ("non_preferred_output", _message(shape, "rejected_messages")),
    )


def _output_problem(side: str, facts: str) -> str:
    return f"""
        WHEN len({facts}) != 1
            THEN '{side} has ' || len({facts}) || ' messages (exactly one assistant message is allowed)'
        WHEN ({facts})[1].role != 'assistant'
            THEN '{side} is a ''' || ({facts})[1].role || ''' message, not an assistant one'
        WHEN NOT ({facts})[1].text AND ({facts})[1].calls = 0 THEN '{side} has no text'
        WHEN ({facts})[1].images > 0 THEN '{side} has images (OpenAI''s preference format takes text only)'"""


def openai_problem_sql(shape: Shape) -> str:
    """Why a row breaks OpenAI's preference format, or NULL (the rules, in order, of ``export.openai_problem``)."""
    source = _facts(shape, "prompt_messages")
    bad = f"list_filter({source}, lambda m: m.role NOT IN {ROLES} OR NOT m.text OR m.images > 0)[1]"
    preferred, non_preferred = _facts(shape, "chosen_messages"), _facts(shape, "rejected_messages")
    outputs = openai_fields(shape)
    return f"""CASE
        WHEN len({source}) = 0 THEN 'no input messages'
        WHEN ({bad}).role NOT IN {ROLES}
            THEN 'an input message has role ''' || ({bad}).role || ''' (only text roles are taken)'
        WHEN NOT ({bad}).text THEN 'an input message has no text'
        WHEN {bad} IS NOT NULL THEN 'an input message has images (OpenAI''s preference format takes text only)'
        {_output_problem("preferred_output", preferred)}
        {_output_problem("non_preferred_output", non_preferred)}
        WHEN {outputs[1][1]} = {outputs[2][1]} THEN 'the preferred and non-preferred outputs are the same'
    END"""
