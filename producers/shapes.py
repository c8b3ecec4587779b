"""What generated requests say: single questions, conversations' follow-ups and agents' tool use.

An agent's candidate is a trajectory: ``assistant`` (tool calls) -> ``tool`` (results) -> ... ->
``assistant`` (the answer), as its ``messages``; candidates of one request take different numbers of
steps. The tools offered are on the inference, in OpenAI's function-spec shape; tool calls are given
in the SDK's shape (arguments as a dict) or in OpenAI's, both of which the SDK accepts.
"""

from __future__ import annotations

import json
import random
from typing import Any

__all__ = ["ASKS", "FOLLOW_UPS", "STYLES", "TOOLS", "TOPICS", "TURNS", "agent_task", "follow_up", "trajectory"]

TOPICS = [
    "sourdough starter",
    "Kafka consumer lag",
    "a haiku about autumn",
    "Python type hints",
    "the French Revolution",
    "unit tests for a parser",
    "a polite refund email",
    "black holes",
    "SQL window functions",
    "a bedtime story about a fox",
    "RLHF vs DPO",
    "tax brackets",
]
ASKS = [
    "Explain {t} to a beginner.",
    "Write a short note about {t}.",
    "What are common mistakes with {t}?",
    "Summarise {t} in three sentences.",
    "Give me a checklist for {t}.",
]
STYLES = [
    "Sure! Here is a concise take on {t}: ",
    "Great question. {t} comes down to this: ",
    "In short, {t} means ",
    "Let's break {t} down step by step. First, ",
    "Here's what matters about {t}: ",
]
FOLLOW_UPS = [
    "Can you make that shorter?",
    "Give me a concrete example.",
    "Why is that so?",
    "What would you change for a team of ten?",
    "Thanks. How would I test that?",
    "Can you say that without jargon?",
    "And what are the risks?",
]
TURNS = (3, 8)  # turns of a generated conversation, fewest and most
CITIES = ["Lisbon", "Oslo", "Nairobi", "Osaka", "Lima", "Toronto"]


def _function(name: str, description: str, **params: str) -> dict[str, Any]:
    properties = {k: {"type": t} for k, t in params.items()}
    schema = {"type": "object", "properties": properties, "required": list(params)}
    return {"type": "function", "function": {"name": name, "description": description, "parameters": schema}}


TOOLS: dict[str, dict[str, Any]] = {
    "get_weather": _function("get_weather", "The forecast for a city.", city="string", days="integer"),
    "search_docs": _function("search_docs", "Search the internal documentation.", query="string", top_k="integer"),
    "run_sql": _function("run_sql", "Run a read-only SQL query on the analytics warehouse.", query="string"),
    "calculator": _function("calculator", "Evaluate an arithmetic expression.", expression="string"),
    "get_order": _function("get_order", "Look up an order by its id.", order_id="string"),
}
#: what an agent is asked, and the tool it needs first
TASKS = [
    ("What's the weather in {city} this weekend, and should I pack an umbrella?", "get_weather"),
    ("Find what our docs say about {t} and summarise it.", "search_docs"),
    ("How many orders did tenant {tenant} place last week?", "run_sql"),
    ("Where is my order {order}? It was due on Monday.", "get_order"),
    ("What is {a} times {b} plus {c}?", "calculator"),
]


def agent_task(rng: random.Random, topic: str) -> tuple[str, list[dict[str, Any]]]:
    """An agent's prompt about ``topic`` and the tools offered with it (the one it needs and 1..3 others)."""
    text, needed = rng.choice(TASKS)
    prompt = text.format(
        city=rng.choice(CITIES),
        t=topic,
        tenant=rng.choice(["acme", "globex", "initech"]),
        order=f"A-{rng.randint(1000, 9999)}",
        a=rng.randint(2, 99),
        b=rng.randint(2, 99),
        c=rng.randint(2, 999),
    )
    others = rng.sample([n for n in TOOLS if n != needed], rng.randint(1, 3))
    return prompt, [TOOLS[n] for n in [needed, *others]]


def _arguments(rng: random.Random, name: str, topic: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Arguments of a call to tool ``name`` and the result it gets."""
    if name == "get_weather":
        city = rng.choice(CITIES)
        sky = rng.choice(["sun", "rain", "cloud"])
        return {"city": city, "days": 3}, {"city": city, "temp_c": rng.randint(-5, 32), "sky": sky}
    if name == "search_docs":
        hits = [{"title": f"{topic}, part {k}", "score": round(rng.random(), 3)} for k in range(1, 4)]
        return {"query": topic, "top_k": 3}, {"hits": hits}
    if name == "run_sql":
        query = "SELECT count(*) FROM orders WHERE placed_at > now() - interval '7 days'"
        return {"query": query}, {"rows": [[rng.randint(0, 5000)]]}
    if name == "calculator":
        a, b, c = rng.randint(2, 99), rng.randint(2, 99), rng.randint(2, 999)
        return {"expression": f"{a}*{b}+{c}"}, {"value": a * b + c}
    status = rng.choice(["shipped", "in transit", "delayed"])
    return {"order_id": f"A-{rng.randint(1000, 9999)}"}, {"status": status, "carrier": "DHL"}


def trajectory(
    rng: random.Random, tools: list[dict[str, Any]], steps: int, answer: str, topic: str
) -> list[dict[str, Any]]:
    """An agent's messages: ``steps`` rounds of tool calls (one, now and then two) and results, then ``answer``."""
    names = [t["function"]["name"] for t in tools]
    messages: list[dict[str, Any]] = []
    for step in range(steps):
        calls = [names[0] if step == 0 else rng.choice(names) for _ in range(2 if rng.random() < 0.2 else 1)]
        shaped, results = [], []
        for name in calls:
            call_id = f"call_{rng.getrandbits(48):012x}"
            args, result = _arguments(rng, name, topic)
            if rng.random() < 0.3:  # OpenAI's shape: arguments as JSON text under "function"
                function = {"name": name, "arguments": json.dumps(args)}
                shaped.append({"id": call_id, "type": "function", "function": function})
            else:
                shaped.append({"id": call_id, "name": name, "arguments": args})
            results.append({"role": "tool", "content": json.dumps(result), "tool_call_id": call_id, "name": name})
        said = rng.choice(["Let me look that up.", "Checking.", "I'll call a tool for that.", "One more lookup."])
        messages += [{"role": "assistant", "content": said, "tool_calls": shaped}, *results]
    return [*messages, {"role": "assistant", "content": answer}]


def follow_up(rng: random.Random) -> str:
    """What a user says next in a conversation."""
    return rng.choice(FOLLOW_UPS)
