"""docs/datasets.md's TRL example trains, as written, on a machine without a GPU.

The python block that calls ``DPOTrainer(`` runs in a child process with CUDA hidden and the Hub
offline. Only what cannot run offline is substituted: both ``from_pretrained`` calls load a tiny
randomly initialised GPT-2 and a word-level tokenizer saved in a local folder (whatever Hub name
the snippet gives), and ``DPOConfig`` gets ``max_steps=1``, ``report_to="none"`` and a batch of 2
on top of the snippet's own arguments. The dataset is a real build by preflog, at the path the
snippet loads (``.preflog/datasets/dpo-v1``, relative to the child's working directory).
"""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

from preflog.dataset.build import build
from preflog.dataset.select import Selection

from .dataset_helpers import PAIRS, rows, write_table

DOCS = Path(__file__).resolve().parents[2] / "docs" / "datasets.md"
MARKER = "DPOTrainer("

#: runs in the child: argv = snippet file, tiny model folder; prints one RESULT line of JSON
RUNNER = """
import json, sys
import transformers, trl

snippet, tiny = sys.argv[1], sys.argv[2]
names = []

def redirect(real):
    def from_pretrained(name, *args, **kwargs):
        names.append(name)
        return real(tiny, *args, **kwargs)
    return from_pretrained

transformers.AutoModelForCausalLM.from_pretrained = redirect(transformers.AutoModelForCausalLM.from_pretrained)
transformers.AutoTokenizer.from_pretrained = redirect(transformers.AutoTokenizer.from_pretrained)
real_config = trl.DPOConfig

def dpo_config(*args, **kwargs):
    return real_config(*args, **{**kwargs, "max_steps": 1, "report_to": "none", "per_device_train_batch_size": 2})

trl.DPOConfig = dpo_config
namespace = {"__name__": "__main__"}
exec(compile(open(snippet).read(), "docs/datasets.md", "exec"), namespace)
trainer = namespace["trainer"]
train = [entry for entry in trainer.state.log_history if "train_loss" in entry]
result = {
    "names": names,
    "use_cpu": trainer.args.use_cpu,
    "bf16": trainer.args.bf16,
    "device": str(trainer.args.device),
    "step": trainer.state.global_step,
    "train_loss": train[-1]["train_loss"] if train else None,
    "eval_loss": trainer.evaluate()["eval_loss"],
}
print("RESULT " + json.dumps(result))
"""


def snippet() -> str:
    """The one python block of docs/datasets.md that calls ``DPOTrainer(``."""
    blocks = re.findall(r"^```python\n(.*?)^```", DOCS.read_text(), re.S | re.M)
    found = [block for block in blocks if MARKER in block]
    assert len(found) == 1, f"expected one python block with {MARKER!r} in {DOCS}, found {len(found)}"
    return found[0]


def tiny_model(folder: Path) -> None:
    """A one-layer GPT-2 (random weights) and a word-level tokenizer of the pairs' words, saved in ``folder``."""
    import transformers
    from tokenizers import Tokenizer
    from tokenizers.models import WordLevel
    from tokenizers.pre_tokenizers import Whitespace

    words = {w for pair in PAIRS for text in pair[:3] for w, _ in Whitespace().pre_tokenize_str(text)}
    vocab = {token: i for i, token in enumerate(["[UNK]", "[PAD]", "[EOS]", *sorted(words)])}
    model = Tokenizer(WordLevel(vocab, unk_token="[UNK]"))
    model.pre_tokenizer = Whitespace()
    tokenizer = transformers.PreTrainedTokenizerFast(
        tokenizer_object=model, unk_token="[UNK]", pad_token="[PAD]", eos_token="[EOS]"
    )
    config = transformers.GPT2Config(
        n_layer=1, n_head=2, n_embd=32, n_positions=128, vocab_size=len(vocab),
        pad_token_id=1, eos_token_id=2, bos_token_id=2,
    )  # fmt: skip
    transformers.GPT2LMHeadModel(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)


def run_snippet(code: str, tmp: Path) -> dict[str, Any]:
    """Run ``code`` in a child process (CUDA hidden, Hub offline) from ``tmp``, next to a preflog build."""
    log = tmp / "log"
    write_table(log, "pairs", rows(PAIRS))
    build(f"file://{log}", tmp / ".preflog" / "datasets", "dpo-v1", Selection(test_fraction=0.3))
    tiny_model(tmp / "tiny")
    (tmp / "snippet.py").write_text(code)
    (tmp / "runner.py").write_text(RUNNER)
    env = {
        **os.environ,
        "CUDA_VISIBLE_DEVICES": "",
        "HF_HUB_OFFLINE": "1",
        "HF_DATASETS_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "HF_HOME": str(tmp / "hf"),  # the datasets cache too: nothing lands in the user's cache
        "TOKENIZERS_PARALLELISM": "false",
    }
    command = [sys.executable, str(tmp / "runner.py"), str(tmp / "snippet.py"), str(tmp / "tiny")]
    done = subprocess.run(command, cwd=tmp, env=env, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-4000:]
    line = next(line for line in done.stdout.splitlines() if line.startswith("RESULT "))
    result: dict[str, Any] = json.loads(line.removeprefix("RESULT "))
    return result


def test_the_dpo_example_of_the_datasets_page_trains_on_a_cpu_only_machine(tmp_path: Path) -> None:
    result = run_snippet(snippet(), tmp_path)
    assert result["names"] and len(set(result["names"])) == 1  # model and tokenizer: the same (substituted) name
    assert result["use_cpu"] is True and result["bf16"] is False and result["device"] == "cpu"
    assert result["step"] == 1
    assert math.isfinite(result["train_loss"]) and math.isfinite(result["eval_loss"])
