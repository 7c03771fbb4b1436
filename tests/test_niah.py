"""gkamradt's needle in a haystack: the reference's needle, question and prompt, the back-off of the
insertion point to the previous sentence-final period, lengths, determinism, the keyword score that
replaces the LLM judge, registration, a tiny-Llama run, and (slow) the time to build a 32k case."""

from __future__ import annotations

import re
import time

import pytest

from longctx.errors import InputError, ParameterError
from longctx.evaluate import Case, ChatTokenizer, count_prompt_tokens, load_tasks, run_eval
from longctx.haystack import NOISE
from longctx.plugins.niah import Niah, NiahConfig

# -- the reference's strings, verbatim (gkamradt/LLMTest_NeedleInAHaystack) ----------------------------

#: run.py's defaults
REF_NEEDLE = "\nThe best thing to do in San Francisco is eat a sandwich and sit in Dolores Park on a sunny day.\n"
REF_QUESTION = "What is the best thing to do in San Francisco?"
#: providers/Anthropic_prompt.txt
REF_PROMPT = (
    "You are a helpful AI bot that answers questions for a user. Keep your response short and direct\n\n"
    "Human: <context>\n{context}\n</context>\n\n{retrieval_question} Don't give information outside the "
    "document or repeat your findings\n\nAssistant: Here is the most relevant sentence in the context:"
)
#: providers/openai.py's messages
REF_SYSTEM = "You are a helpful AI bot that answers questions for a user. Keep your response short and direct"
REF_USER_QUESTION = "{retrieval_question} Don't give information outside the document or repeat your findings"

HEAD, TAIL = REF_PROMPT.split("{context}")
TAIL = TAIL.format(retrieval_question=REF_QUESTION)


def one(task, tok, length, depth=0.5, seed=0) -> Case:
    cases = list(task.cases(tok, length=length, depth=depth, seed=seed))
    assert len(cases) == 1
    return cases[0]


def split(case: Case) -> tuple[str, str, str]:
    """(haystack before the needle, the needle with its newlines, haystack after it)."""
    assert case.prompt.startswith(HEAD) and case.prompt.endswith(TAIL)
    context = case.prompt[len(HEAD) : -len(TAIL)]
    assert context.count(REF_NEEDLE) == 1
    before, after = context.split(REF_NEEDLE)
    return before, REF_NEEDLE, after


# -- prompt, needle, back-off --------------------------------------------------------------------------


def test_reference_prompt_and_needle(byte_tok):
    task = Niah()
    case = one(task, byte_tok, 2048)
    before, _, after = split(case)
    assert case.answer == REF_NEEDLE.strip() and case.references == ("sandwich", "Dolores Park")
    assert case.query == TAIL[TAIL.index(REF_QUESTION) :]  # the question line and the prefill, kept by reducers
    assert case.max_new_tokens == 300
    start, end = case.meta["needle_start"], case.meta["needle_end"]
    assert case.prompt[start:end] == REF_NEEDLE.strip()
    # the haystack is the bundled Pride and Prejudice from its first chapter (never Paul Graham)
    assert (before + after).startswith("Chapter 1\n\nIt is a truth universally acknowledged")
    assert "Bennet" in before + after


SENTENCE_END = re.compile(r"\b[a-z]{3,}\.(?=\s)")  # a lower-case word ending a sentence with a bare period


@pytest.mark.parametrize("depth", [0.1, 0.25, 0.5, 0.75, 0.9])
@pytest.mark.parametrize("seed", [0, 5])
def test_insertion_backs_off_to_the_previous_period(byte_tok, depth, seed):
    case = one(Niah(), byte_tok, 4096, depth=depth, seed=seed)
    before, _, after = split(case)
    hay = before + after
    at = len(before)
    target = int(len(hay) * depth)
    assert case.meta["insertion_char"] == at and case.meta["haystack_chars"] == len(hay)
    assert at <= target
    # right after a sentence-final period, not an abbreviation's, and followed by whitespace
    assert hay[at - 1] == "." and hay[at].isspace()
    assert not re.search(r"\b(Mr|Mrs|Dr|St)\.$", before)
    # and no sentence-final period between it and the insertion point
    assert not [m for m in SENTENCE_END.finditer(hay) if at < m.end() <= target]
    assert depth - 0.1 <= case.meta["depth_placed"] <= depth


def test_depth_extremes(byte_tok):
    first = one(Niah(), byte_tok, 2048, depth=0.0)
    last = one(Niah(), byte_tok, 2048, depth=1.0)
    assert split(first)[0] == "" and first.meta["depth_placed"] == 0.0
    assert split(last)[2] == "" and last.meta["depth_placed"] == 1.0
    with pytest.raises(InputError, match="niah: depth"):
        one(Niah(), byte_tok, 2048, depth=1.5)


def test_noise_haystack(byte_tok):
    case = one(Niah(NiahConfig(haystack="noise")), byte_tok, 2048, depth=0.5)
    before, _, after = split(case)
    words = (before + after).split()
    assert words == (NOISE.split() * 40)[: len(words)]
    assert before.endswith(".") and abs(case.meta["depth_placed"] - 0.5) < 0.05


@pytest.mark.parametrize("length", [1024, 2048, 4096])
@pytest.mark.parametrize("depth", [0.0, 0.5, 1.0])
def test_length_within_tolerance(byte_tok, length, depth):
    case = one(Niah(), byte_tok, length, depth=depth, seed=1)
    measured = count_prompt_tokens(byte_tok, case.prompt) + case.max_new_tokens
    assert case.actual_tokens == measured and case.target_tokens == length
    assert length * 0.99 <= measured <= length


def test_too_short_names_the_task(byte_tok):
    with pytest.raises(InputError, match="niah: a length of 500 tokens is too short"):
        one(Niah(), byte_tok, 500)


def test_deterministic_and_seeds_move_the_haystack(byte_tok):
    a = one(Niah(), byte_tok, 2048, seed=3)
    assert a == one(Niah(), byte_tok, 2048, seed=3)
    assert one(Niah(), byte_tok, 1024, seed=3).meta["haystack_start_word"] == a.meta["haystack_start_word"] > 0
    starts = {one(Niah(), byte_tok, 1024, seed=s).meta["haystack_start_word"] for s in range(1, 6)}
    assert len(starts) == 5
    assert one(Niah(), byte_tok, 1024, seed=0).meta["haystack_start_word"] == 0  # the reference: from the start
    # a later start begins a sentence, after a period
    before, _, after = split(a)
    assert (before + after)[0].isupper() or (before + after)[0] in "\"'_"


# -- the score that replaces the LLM judge --------------------------------------------------------------


def test_keyword_score(byte_tok):
    task = Niah()
    case = one(task, byte_tok, 1024)
    assert task.score(" The best thing to do in San Francisco is eat a sandwich and sit in Dolores Park.", case) == 1
    assert task.score("EAT A SANDWICH in dolores park", case) == 1.0
    assert task.score("Sit in Dolores Park on a sunny day.", case) == 0.5
    assert task.score("I could not find it.", case) == 0.0 and task.score("", case) == 0.0


def test_custom_needle_question_answer(byte_tok):
    spec = "niah:needle=The secret ingredient of the soup is saffron.,question=What is the secret ingredient?"
    [(key, task)] = load_tasks([spec + ",answer=saffron"]).items()
    assert key.startswith("niah:needle=")
    case = one(task, byte_tok, 2048)
    assert "\nThe secret ingredient of the soup is saffron.\n" in case.prompt
    assert case.prompt.endswith(
        "What is the secret ingredient? Don't give information outside the document or repeat your findings\n\n"
        "Assistant: Here is the most relevant sentence in the context:"
    )
    with pytest.raises(ParameterError, match="not in it: sandwich"):
        NiahConfig(needle="The secret ingredient of the soup is saffron.")
    cfg = NiahConfig(needle="The secret ingredient of the soup is saffron.", answer="saffron|soup")
    case = one(Niah(cfg), byte_tok, 2048)
    assert case.references == ("saffron", "soup") and Niah(cfg).score("saffron", case) == 0.5


def test_chat_mode_uses_the_chat_messages(byte_tok):
    byte_tok.chat_template = (
        "{% for m in messages %}<|user|>{{ m['content'] }}<|end|>{% endfor %}"
        "{% if add_generation_prompt %}<|assistant|>{% endif %}"
    )
    case = one(Niah(), ChatTokenizer(byte_tok), 2048)
    question = REF_USER_QUESTION.format(retrieval_question=REF_QUESTION)
    assert case.prompt.startswith("<|user|>" + REF_SYSTEM + "\n\n")
    assert case.prompt.endswith("\n\n" + question + "<|end|><|assistant|>")
    assert "Human:" not in case.prompt and "Assistant:" not in case.prompt
    assert case.query.startswith(question)


# -- registration and a tiny model ------------------------------------------------------------------------


def test_registered():
    from longctx.hooks.evaluation import EvalTask
    from longctx.registry import get_registry

    tech = get_registry().get("evaluation", "niah")
    assert tech.plugin == "niah" and "LLMTest_NeedleInAHaystack" in tech.paper
    task = tech.build(NiahConfig(), None)
    assert isinstance(task, EvalTask) and dict(task.tags) == {"diffusion": "low", "scope": "low"}
    assert getattr(task, "depth_sensitive", True) is True


def test_run_eval_on_tiny_llama(tiny, tmp_path):
    from longctx.runtime import compose

    task = Niah(NiahConfig(max_new_tokens=8))
    with compose(tiny("llama", max_position_embeddings=1024), None) as pipe:
        rows = run_eval({"tiny": pipe}, {"niah": task}, lengths=[800], depths=[0.0, 1.0], out_dir=tmp_path)
    assert [r["depth"] for r in rows] == [0.0, 1.0]
    for r in rows:
        assert r["error"] is None and r["prompt_tokens"] + 8 == r["actual_tokens"] <= 800
        assert 0.0 <= r["score"] <= 1.0 and isinstance(r["prediction"], str)


@pytest.mark.slow
@pytest.mark.parametrize("haystack", ["essay", "noise"])
def test_32k_case_generation_time(byte_tok, haystack):
    task = Niah(NiahConfig(haystack=haystack))
    one(task, byte_tok, 2048)  # warm the haystack cache
    t0 = time.perf_counter()
    case = one(task, byte_tok, 32768, depth=0.5, seed=1)
    seconds = time.perf_counter() - t0
    print(f"\nniah ({haystack}): one 32k-token case with the byte tokenizer in {seconds:.3f} s")
    assert 32768 * 0.99 <= case.actual_tokens <= 32768
    assert seconds < 1.0
