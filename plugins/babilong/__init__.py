"""``babilong-qa1`` … ``babilong-qa5``: bAbI reasoning facts scattered through long prose.

Kuratov et al. 2024, "BABILong: Testing the Limits of LLMs with Long Context Reasoning-in-a-Haystack",
arXiv:2406.10149 (``booydar/babilong``: ``babilong/babilong_utils.py``, ``prompts.py``, ``metrics.py``),
built on the first five bAbI tasks of Weston et al. 2015, "Towards AI-Complete Question Answering: A Set of
Prerequisite Toy Tasks", arXiv:1502.05698.

**Facts.** BABILong samples a bAbI story — the fact sentences up to one question — and hides them in long
background text. bAbI's data files are not bundled here; a small simulator of bAbI's world writes the
stories instead (:class:`World`): four people, bAbI's six rooms and three objects, the actions *move*,
*grab*, *drop* and *give* with bAbI's verbs, and a question whose answer the simulator computes from its
state (never from the text):

============  ====================================  ==============================================
task          facts                                  question (answer)
============  ====================================  ==============================================
qa1           moves                                  ``Where is Mary?`` (her latest room)
qa2           moves, grabs, drops                    ``Where is the milk?`` (holder's room / where
                                                     it was dropped; two supporting facts)
qa3           moves, grabs, drops                    ``Where was the milk before the kitchen?`` (the
                                                     room the milk was in before its current one;
                                                     three supporting facts)
qa4           two spatial relations                  ``What is north of the kitchen?`` /
                                                     ``What is the kitchen north of?``
qa5           moves, grabs, drops, gives             ``Who gave the milk to Fred?``, ``What did Jeff
                                                     give to Bill?``, ``Who received the apple?`` …
============  ====================================  ==============================================

A question is only asked when its answer is unique (qa3: the current room occurs once in the object's
trail; qa5: every give event matching the question agrees), so the label-set scorer is never ambiguous.

**Haystack and length.** ``NoiseInjectionDataset`` fills ``sample_size`` tokens with PG19 sentences,
cutting the last sentence at the token budget, and inserts the facts *in order* at sorted positions drawn
uniformly among the sentence boundaries (``gen.choice(possible_positions, n_facts)``, sorted), optionally
restricted to ``[task_start_pct, task_end_pct]`` of the sample. Here the background is public-domain prose
(:func:`longctx.haystack.prose_sentences`, *Pride and Prejudice* instead of PG19, which is not bundled),
starting at a seeded sentence, and the number of background *words* is fitted by binary search
(:func:`longctx.evaluate.fit_length`) so that the whole prompt with BOS plus the generation budget comes
within ``tolerance`` of the target (the last sentence is cut, as BABILong cuts its last sentence's tokens).

**Depth.** Each fact sits at a fraction of the background's characters: sorted uniform draws ``u_i`` (fixed
by the seed) mapped into a window of width ``window`` centred on ``depth`` and shifted to lie inside
``[0, 1]`` — the analogue of BABILong's ``task_start_pct``/``task_end_pct``. ``window = 1`` (the default)
is BABILong's own setting: the facts are spread uniformly over the whole background and depth means
nothing (the task is then built once per length). ``window = 0.1, depth = 0.25`` packs them into
``[0.2, 0.3]``. The actual fraction of every fact is in ``meta["fact_depths"]``.

**Prompt** (``prompts.py``; ``get_formatted_input`` strips the result)::

    {instruction}\\n{examples}\\n{post_prompt}\\n<context>\\n{context}\\n</context>\\nQuestion: {question}

with BABILong's ``DEFAULT_PROMPTS`` strings for each task, instruction and post-prompt on and in-context
examples off by default (``run_model_on_babilong.py``'s ``--use_instruction/--use_examples/--use_post_prompt``).
BABILong applies no answer prefix (it evaluates chat models); for completion mode the prompt ends with
``"\\nAnswer:"``, the prefix of BABILong's own examples (``answer_prefix=false`` drops it). Generation budget:
``max_new_tokens = 20`` as the reference.

**Score** (``metrics.py``, ``compare_answers``): lower-case the output, keep its first sentence (split at
``"."``), cut at ``<context>``, ``<example>`` and ``Question`` (the last is a no-op after lower-casing — kept,
as in the reference); collect the task's labels (``TASK_LABELS``: the six rooms for qa1–qa4; qa5's people
and objects) found as substrings of the output, drop those mentioned in the question; 1 when the target is
the only label left, else 0.

Goldman et al. 2024, "Is It Really Long Context if All You Need Is Retrieval?", arXiv:2407.00402: scope low
for all five (two to three short facts answer the question); diffusion low for qa1, qa4 and qa5, whose
supporting facts name what the question names, and high for qa2 and qa3, whose supporting facts are found
only by chaining (the object's holder, then the holder's moves) among distractor facts of the same form
scattered through the prose.
"""

from __future__ import annotations

import bisect
import random
from collections.abc import Iterator, Sequence
from types import MappingProxyType
from typing import Any

import attrs

from longctx.errors import InputError, LongctxError
from longctx.evaluate import Case, count_prompt_tokens, derive_seed, fit_length, render_prompt
from longctx.haystack import DEFAULT_PROSE, insert_at_depths, prose_sentences
from longctx.hooks import hookimpl
from longctx.params import at_least, in_range, optional

__all__ = [
    "DEFAULT_PROMPTS",
    "DEFAULT_TEMPLATE",
    "LOCATIONS",
    "OBJECTS",
    "TASKS",
    "TASK_LABELS",
    "Babilong",
    "BabilongConfig",
    "Fact",
    "Story",
    "World",
    "compare_answers",
    "make_story",
    "preprocess_output",
    "spread_depths",
]

# -- BABILong's prompts (prompts.py), verbatim: the benchmark is defined by these strings -----------------

DEFAULT_TEMPLATE = "{instruction}\n{examples}\n{post_prompt}\n<context>\n{context}\n</context>\nQuestion: {question}"

DEFAULT_PROMPTS: dict[str, dict[str, str]] = {
    "qa1": {
        "instruction": (
            "I will give you context with the facts about positions of different persons hidden in some random text "
            "and a question. You need to answer the question based only on the information from the facts. "
            "If a person was in different locations, use the latest location to answer the question."
        ),
        "examples": (
            "<example>\n"
            "Charlie went to the hallway. Judith come back to the kitchen. Charlie travelled to balcony. "
            "Where is Charlie?\n"
            "Answer: The most recent location of Charlie is balcony.\n"
            "</example>\n\n"
            "<example>\n"
            "Alan moved to the garage. Charlie went to the beach. Alan went to the shop. Rouse "
            "travelled to balcony. Where is Alan?\n"
            "Answer: The most recent location of Alan is shop.\n"
            "</example>"
        ),
        "post_prompt": (
            "Always return your answer in the following format: "
            "The most recent location of ’person’ is ’location’. Do not write anything else after that. "
        ),
    },
    "qa2": {
        "instruction": (
            "I give you context with the facts about locations and actions of different persons "
            "hidden in some random text and a question."
            "You need to answer the question based only on the information from the facts.\n"
            "If a person got an item in the first location and travelled to the second location "
            "the item is also in the second location. "
            "If a person dropped an item in the first location and moved to the second location "
            "the item remains in the first location."
        ),
        "examples": (
            "<example>\n"
            "Charlie went to the kitchen. Charlie got a bottle. Charlie moved to the balcony. "
            "Where is the bottle?\n"
            "Answer: The bottle is in the balcony.\n"
            "</example>\n"
            "<example>\n"
            "Alan moved to the garage. Alan got a screw driver. Alan moved to the kitchen. Where "
            "is the screw driver?\n"
            "Answer: The screw driver is in the kitchen.\n"
            "</example>"
        ),
        "post_prompt": (
            "Always return your answer in the following format: The ’item’ is in ’location’. "
            "Do not write anything else after that."
        ),
    },
    "qa3": {
        "instruction": (
            "I give you context with the facts about locations and actions of different persons "
            "hidden in some random text and a question. "
            "You need to answer the question based only on the information from the facts.\n"
            "If a person got an item in the first location and travelled to the second location "
            "the item is also in the second location. "
            "If a person dropped an item in the first location and moved to the second location "
            "the item remains in the first location"
        ),
        "examples": (
            "<example>\n"
            "John journeyed to the bedroom.Mary grabbed the apple. Mary went back to the bathroom. "
            "Daniel journeyed to the bedroom. Daniel moved to the garden. Mary travelled to the kitchen. "
            "Where was the apple before the kitchen?\n"
            "Answer: Before the kitchen the apple was in the bathroom.\n"
            "</example>\n"
            "<example>\n"
            "John went back to the bedroom. John went back to the garden. John went back to the kitchen. "
            "Sandra took the football. Sandra travelled to the garden. Sandra journeyed to the bedroom. "
            "Where was the football before the bedroom?\n"
            "Answer: Before the kitchen the football was in the garden.\n"
            "</example>"
        ),
        "post_prompt": (
            "Always return your answer in the following format: "
            "Before the $location_1& the $item$ was in the $location_2$. Do not write anything else after that."
        ),
    },
    "qa4": {
        "instruction": (
            "I will give you context with the facts about different people, their location and actions, hidden in "
            "some random text and a question. "
            "You need to answer the question based only on the information from the facts."
        ),
        "examples": (
            "<example>\n"
            "The hallway is south of the kitchen. The bedroom is north of the kitchen. "
            "What is the kitchen south of?\n"
            "Answer: bedroom\n"
            "</example>\n"
            "<example>\n"
            "The garden is west of the bedroom. The bedroom is west of the kitchen. What is west of the bedroom?\n"
            "Answer: garden\n"
            "</example>"
        ),
        "post_prompt": "Your answer should contain only one word - location. Do not write anything else after that.",
    },
    "qa5": {
        "instruction": (
            "I will give you context with the facts about locations and their relations hidden in some random text "
            "and a question. You need to answer the question based only on the information from the facts."
        ),
        "examples": (
            "<example>\n"
            "Mary picked up the apple there. Mary gave the apple to Fred. Mary moved to the bedroom. "
            "Bill took the milk there. Who did Mary give the apple to?\n"
            "Answer: Fred\n"
            "</example>\n"
            "<example>\n"
            "Jeff took the football there. Jeff passed the football to Fred. Jeff got the milk there. "
            "Bill travelled to the bedroom. Who gave the football?\n"
            "Answer: Jeff\n"
            "</example>\n"
            "<example>\n"
            "Fred picked up the apple there. Fred handed the apple to Bill. Bill journeyed to the bedroom. "
            "Jeff went back to the garden. What did Fred give to Bill?\n"
            "Answer: apple\n"
            "</example>"
        ),
        "post_prompt": (
            "Your answer should contain only one word. Do not write anything else after that. "
            "Do not explain your answer."
        ),
    },
}

# -- bAbI's world -------------------------------------------------------------------------------------

#: bAbI's six rooms (the qa1–qa4 label set of BABILong's ``TASK_LABELS``).
LOCATIONS = ("bathroom", "bedroom", "garden", "hallway", "kitchen", "office")
#: bAbI's three objects.
OBJECTS = ("apple", "football", "milk")
#: The people of each task (bAbI: John, Mary, Sandra, Daniel; qa5: Bill, Fred, Jeff, Mary).
PEOPLE = {
    "qa1": ("Daniel", "John", "Mary", "Sandra"),
    "qa2": ("Daniel", "John", "Mary", "Sandra"),
    "qa3": ("Daniel", "John", "Mary", "Sandra"),
    "qa4": (),
    "qa5": ("Bill", "Fred", "Jeff", "Mary"),
}
#: BABILong's ``TASK_LABELS`` (``metrics.py``): what counts as an answer in an output.
TASK_LABELS: dict[str, frozenset[str]] = {
    "qa1": frozenset(LOCATIONS),
    "qa2": frozenset(LOCATIONS),
    "qa3": frozenset(LOCATIONS),
    "qa4": frozenset(LOCATIONS),
    "qa5": frozenset((*PEOPLE["qa5"], *OBJECTS)),
}
TASKS = ("qa1", "qa2", "qa3", "qa4", "qa5")
#: The answer prefix in completion mode (``answer_prefix=true``): the prefix of BABILong's examples.
ANSWER_PREFIX = "\nAnswer:"

#: bAbI's verbs for each action.
MOVE_VERBS = ("moved to", "went to", "journeyed to", "travelled to", "went back to")
GRAB_VERBS = ("picked up", "got", "grabbed", "took")
DROP_VERBS = ("dropped", "discarded", "put down", "left")
GIVE_VERBS = ("gave", "handed", "passed")
DIRECTIONS = ("north", "south", "east", "west")
OPPOSITE = {"north": "south", "south": "north", "east": "west", "west": "east"}
_STEP = {"north": (0, 1), "south": (0, -1), "east": (1, 0), "west": (-1, 0)}

#: Facts per story when ``n_facts`` is not given: bAbI's qa1 stories hold up to 10 facts before a question;
#: qa2/qa3 stories are longer (a question about an object needs it picked up and carried); qa4 is always two
#: relations.
DEFAULT_FACTS = {"qa1": 10, "qa2": 20, "qa3": 30, "qa4": 2, "qa5": 15}
#: Action weights of the simulator per task (only valid actions are drawn).
_WEIGHTS = {
    "qa1": {"move": 1.0},
    "qa2": {"move": 0.5, "grab": 0.25, "drop": 0.25},
    "qa3": {"move": 0.5, "grab": 0.25, "drop": 0.25},
    "qa5": {"move": 0.35, "grab": 0.25, "give": 0.3, "drop": 0.1},
}


@attrs.frozen
class Fact:
    """One fact sentence and what it states.

    :ivar kind: ``move``, ``grab``, ``drop``, ``give`` or ``relation``.
    :ivar actor: the person acting (for a relation: the first room).
    :ivar target: the room moved to, the object grabbed/dropped/given (relation: the direction).
    :ivar other: the recipient of a give (relation: the second room), else ``""``.
    :ivar text: the sentence.
    """

    kind: str
    actor: str
    target: str
    other: str
    text: str


@attrs.frozen
class Story:
    """A bAbI story: its facts in order, a question, the answer and the indices of the supporting facts."""

    task: str
    facts: tuple[Fact, ...]
    question: str
    answer: str
    supporting: tuple[int, ...]


class World:
    """bAbI's world (qa1, qa2, qa3, qa5): where each person is, who holds each object, where each object is.

    Every location starts unknown; a person's becomes known by a move. Only people whose location is known
    grab, drop or give (so every object's location is always known once it has been picked up), a person
    grabs an object where it lies (or one never seen before), and a give needs both people in one room.
    """

    def __init__(self, people: Sequence[str]) -> None:
        self.people = tuple(people)
        self.loc: dict[str, str | None] = dict.fromkeys(self.people)
        self.holder: dict[str, str | None] = dict.fromkeys(OBJECTS)
        self.obj_loc: dict[str, str | None] = dict.fromkeys(OBJECTS)
        #: the rooms each object has been in, consecutive duplicates merged
        self.trail: dict[str, list[str]] = {o: [] for o in OBJECTS}
        #: fact index at which each trail entry began
        self.trail_fact: dict[str, list[int]] = {o: [] for o in OBJECTS}
        self.facts: list[Fact] = []
        self.last_move: dict[str, int] = {}
        self.last_grab: dict[str, int] = {}
        self.gives: list[tuple[int, str, str, str]] = []  # (fact index, giver, object, receiver)

    def where(self, obj: str) -> str | None:
        """The object's current room: its holder's, or where it lies."""
        h = self.holder[obj]
        return self.loc[h] if h is not None else self.obj_loc[obj]

    def _enter(self, obj: str, room: str | None) -> None:
        if room is not None and (not self.trail[obj] or self.trail[obj][-1] != room):
            self.trail[obj].append(room)
            self.trail_fact[obj].append(len(self.facts) - 1)

    def actions(self, kind: str) -> list[tuple[str, ...]]:
        """The valid actions of ``kind`` in the current state, as argument tuples."""
        if kind == "move":
            return [(p, r) for p in self.people for r in LOCATIONS if r != self.loc[p]]
        if kind == "grab":
            return [
                (p, o)
                for p in self.people
                if self.loc[p] is not None
                for o in OBJECTS
                if self.holder[o] is None and self.obj_loc[o] in (None, self.loc[p])
            ]
        if kind == "drop":
            return [(self.holder[o], o) for o in OBJECTS if self.holder[o] is not None]  # type: ignore[misc]
        if kind == "give":
            out = []
            for o in OBJECTS:
                p = self.holder[o]
                if p is None:
                    continue
                out += [(p, o, q) for q in self.people if q != p and self.loc[q] == self.loc[p]]
            return out
        raise ValueError(f"unknown action {kind!r}")

    def apply(self, kind: str, args: tuple[str, ...], verb: str) -> Fact:
        """Perform an action and record its fact sentence."""
        if kind == "move":
            p, room = args
            fact = Fact("move", p, room, "", f"{p} {verb} the {room}.")
            self.facts.append(fact)
            self.loc[p] = room
            self.last_move[p] = len(self.facts) - 1
            for o in OBJECTS:
                if self.holder[o] == p:
                    self._enter(o, room)
        elif kind == "grab":
            p, o = args
            fact = Fact("grab", p, o, "", f"{p} {verb} the {o} there.")
            self.facts.append(fact)
            self.holder[o] = p
            self.obj_loc[o] = None
            self.last_grab[o] = len(self.facts) - 1
            self._enter(o, self.loc[p])
        elif kind == "drop":
            p, o = args
            fact = Fact("drop", p, o, "", f"{p} {verb} the {o}.")
            self.facts.append(fact)
            self.holder[o] = None
            self.obj_loc[o] = self.loc[p]
        elif kind == "give":
            p, o, q = args
            fact = Fact("give", p, o, q, f"{p} {verb} the {o} to {q}.")
            self.facts.append(fact)
            self.holder[o] = q
            self.gives.append((len(self.facts) - 1, p, o, q))
        else:
            raise ValueError(f"unknown action {kind!r}")
        return fact

    def step(self, rng: random.Random, weights: dict[str, float]) -> Fact:
        """One random valid action, the kind drawn by ``weights`` among kinds with a valid action."""
        valid = {k: self.actions(k) for k in weights}
        kinds = [k for k in weights if valid[k]]
        kind = rng.choices(kinds, weights=[weights[k] for k in kinds])[0]
        options = valid[kind]
        if kind == "move" and "give" in weights and rng.random() < 0.5:
            # qa5: half the moves join someone, so that gives (which need two people in a room) happen
            joins = [(p, r) for p, r in options if any(self.loc[q] == r for q in self.people if q != p)]
            options = joins or options
        args = rng.choice(options)
        verbs = {"move": MOVE_VERBS, "grab": GRAB_VERBS, "drop": DROP_VERBS, "give": GIVE_VERBS}[kind]
        return self.apply(kind, args, rng.choice(verbs))

    # -- questions --------------------------------------------------------------------------------------

    def questions(self, task: str) -> list[tuple[str, str, tuple[int, ...]]]:
        """Every question of ``task`` with a unique answer in the current state: ``(question, answer,
        supporting fact indices)``."""
        out: list[tuple[str, str, tuple[int, ...]]] = []
        if task == "qa1":
            for p in self.people:
                if self.loc[p] is not None:
                    out.append((f"Where is {p}?", self.loc[p], (self.last_move[p],)))  # type: ignore[arg-type]
        elif task == "qa2":
            for o in OBJECTS:
                if not self.trail[o]:
                    continue
                room = self.where(o)
                h = self.holder[o]
                if h is not None:
                    support = (self.last_grab[o], self.last_move[h])
                else:
                    drop = max(i for i, f in enumerate(self.facts) if f.kind == "drop" and f.target == o)
                    dropper = self.facts[drop].actor
                    move = max(
                        i for i in range(drop) if self.facts[i].kind == "move" and self.facts[i].actor == dropper
                    )
                    support = (move, drop)
                out.append((f"Where is the {o}?", room, tuple(sorted(set(support)))))  # type: ignore[arg-type]
        elif task == "qa3":
            for o in OBJECTS:
                trail = self.trail[o]
                if len(trail) >= 2 and trail.count(trail[-1]) == 1:
                    prev, last = self.trail_fact[o][-2:]  # the facts that put the object in those rooms
                    grab = max(i for i in range(last) if self.facts[i].kind == "grab" and self.facts[i].target == o)
                    if self.facts[prev].kind == "grab":  # it was picked up there: the room is named by a move
                        who = self.facts[prev].actor
                        prev = max(
                            i for i in range(prev) if self.facts[i].kind == "move" and self.facts[i].actor == who
                        )
                    support = (grab, prev, last)
                    out.append((f"Where was the {o} before the {trail[-1]}?", trail[-2], tuple(sorted(set(support)))))
        elif task == "qa5":
            out = self._give_questions()
        return out

    def _give_questions(self) -> list[tuple[str, str, tuple[int, ...]]]:
        gives = self.gives
        out: list[tuple[str, str, tuple[int, ...]]] = []
        seen: set[str] = set()

        def add(question: str, matches: list[tuple[int, str, str, str]], pick: int) -> None:
            answers = {m[pick] for m in matches}
            if question not in seen and len(answers) == 1:
                seen.add(question)
                out.append((question, answers.pop(), (matches[-1][0],)))

        for _, p, o, q in gives:
            add(f"What did {p} give to {q}?", [g for g in gives if g[1] == p and g[3] == q], 2)
            add(f"Who gave the {o} to {q}?", [g for g in gives if g[2] == o and g[3] == q], 1)
            add(f"Who did {p} give the {o} to?", [g for g in gives if g[1] == p and g[2] == o], 3)
            add(f"Who gave the {o}?", [g for g in gives if g[2] == o], 1)
            add(f"Who received the {o}?", [g for g in gives if g[2] == o], 3)
        return out


def _relation_story(rng: random.Random) -> Story:
    """qa4: two relations around a shared room, then a question with a unique answer."""
    while True:
        a, b, c = rng.sample(LOCATIONS, 3)
        d1, d2 = rng.choice(DIRECTIONS), rng.choice(DIRECTIONS)
        # a is d1 of c; then either b is d2 of c, or c is d2 of b
        pos = {c: (0, 0), a: _STEP[d1]}
        if rng.random() < 0.5:
            pos[b] = _STEP[d2]
            second = (b, d2, c)
        else:
            pos[b] = (-_STEP[d2][0], -_STEP[d2][1])
            second = (c, d2, b)
        if len(set(pos.values())) < 3:
            continue  # two rooms in one place
        facts = tuple(Fact("relation", x, d, y, f"The {x} is {d} of the {y}.") for x, d, y in ((a, d1, c), second))
        rel = {(f.actor, f.target, f.other) for f in facts} | {(f.other, OPPOSITE[f.target], f.actor) for f in facts}
        questions = []
        for x, d, y in sorted(rel):
            # "What is d of y?" -> x ; "What is x d of?" -> y  (asked only when unique)
            if sum(1 for r in rel if r[1] == d and r[2] == y) == 1:
                questions.append((f"What is {d} of the {y}?", x))
            if sum(1 for r in rel if r[0] == x and r[1] == d) == 1:
                questions.append((f"What is the {x} {d} of?", y))
        question, answer = rng.choice(questions)
        return Story("qa4", facts, question, answer, (0, 1))


def make_story(task: str, rng: random.Random, n_facts: int | None = None) -> Story:
    """A bAbI story of ``task`` with ``n_facts`` facts (the task's default when ``None``), drawn from ``rng``."""
    if task not in TASKS:
        raise InputError(f"babilong: unknown task {task!r}; choose from {', '.join(TASKS)}")
    if task == "qa4":
        return _relation_story(rng)
    n = n_facts or DEFAULT_FACTS[task]
    minimum = {"qa1": 1, "qa2": 2, "qa3": 3, "qa5": 3}[task]
    if n < minimum:
        raise InputError(f"babilong-{task}: n_facts must be at least {minimum}, got {n}")
    for _ in range(1000):
        world = World(PEOPLE[task])
        for _ in range(n):
            world.step(rng, _WEIGHTS[task])
        questions = world.questions(task)
        if questions:
            question, answer, support = rng.choice(questions)
            return Story(task, tuple(world.facts), question, answer, support)
    raise LongctxError(f"babilong-{task}: no story of {n} facts with an answerable question; use more facts")


# -- scoring (metrics.py) ---------------------------------------------------------------------------------


def preprocess_output(output: str) -> str:
    """BABILong's output cleaning: lower-case, first sentence, cut where the model starts a new example.

    The cut at ``"Question"`` comes after lower-casing, so it never fires — reproduced as the reference has it.
    """
    output = output.lower()
    output = output.split(".")[0]
    output = output.split("<context>")[0]
    output = output.split("<example>")[0]
    output = output.split("Question")[0]
    return output


def compare_answers(target: str, output: str, question: str, task_labels: frozenset[str] | set[str]) -> bool:
    """BABILong's label-set rule: the target is the only task label in the (cleaned) output that the
    question does not mention."""
    output = preprocess_output(output)
    target = target.lower()
    labels = {label.lower() for label in task_labels}
    in_question = {label for label in labels if label in question.lower()}
    in_output = {label for label in labels if label in output} - in_question
    return target in in_output and len(in_output) == 1


# -- depth -> fact positions ---------------------------------------------------------------------------


def spread_depths(u: Sequence[float], depth: float, window: float) -> tuple[list[float], tuple[float, float]]:
    """Map sorted uniform draws ``u`` (in [0, 1]) into the window of width ``window`` centred on ``depth``,
    shifted to lie inside [0, 1]. Returns the fractions and the window ``(lo, hi)``."""
    if not 0.0 <= depth <= 1.0:
        raise InputError(f"depth must be between 0 and 1, got {depth}")
    lo = min(max(depth - window / 2, 0.0), 1.0 - window)
    hi = lo + window
    return [lo + x * window for x in u], (lo, hi)


class _Filler:
    """Background prose from a seeded sentence on, cut to a number of words (the last sentence cut short)."""

    def __init__(self, start: int, max_words: int, source: str) -> None:
        self.sentences: list[str] = []
        self.ends: list[int] = []  # cumulative words after each sentence
        total, chunk = 0, 256
        while total < max_words:
            for s in prose_sentences(chunk, source=source, start=start + len(self.sentences)):
                total += len(s.split())
                self.sentences.append(s)
                self.ends.append(total)
        self.total = total

    def take(self, n_words: int) -> list[str]:
        """The background of exactly ``n_words`` words, as sentences."""
        k = bisect.bisect_left(self.ends, n_words)  # sentences[:k] have fewer than n_words words
        out = self.sentences[:k]
        have = self.ends[k - 1] if k else 0
        if n_words > have:
            out.append(" ".join(self.sentences[k].split()[: n_words - have]))
        return out


# -- the task ---------------------------------------------------------------------------------------------


@attrs.frozen
class BabilongConfig:
    """Prompt parts, story size, fact spread, generation budget and length tolerance."""

    max_new_tokens: int = attrs.field(
        default=20, validator=at_least(1), metadata={"help": "tokens to generate (BABILong: 20)"}
    )
    tolerance: float = attrs.field(
        default=0.01,
        validator=in_range(0.0, 1.0),
        metadata={"help": "how far below the target length a prompt may stay (fraction)"},
    )
    n_facts: int | None = attrs.field(
        default=None,
        validator=optional(at_least(1)),
        metadata={"help": "fact sentences per story (none: qa1 10, qa2 20, qa3 30, qa4 2, qa5 15)"},
    )
    window: float = attrs.field(
        default=1.0,
        validator=in_range(0.01, 1.0),
        metadata={"help": "fraction of the background the facts spread over, centred on depth (1: uniform)"},
    )
    instruction: bool = attrs.field(default=True, metadata={"help": "include BABILong's instruction"})
    examples: bool = attrs.field(default=False, metadata={"help": "include BABILong's in-context examples"})
    post_prompt: bool = attrs.field(default=True, metadata={"help": "include BABILong's answer-format post-prompt"})
    answer_prefix: bool = attrs.field(
        default=True,
        metadata={"help": "end the prompt with a line 'Answer:' (the answer prefix of BABILong's examples)"},
    )
    haystack: str = attrs.field(
        default=DEFAULT_PROSE,
        metadata={"help": "background prose: 'pride_and_prejudice' (bundled) or a path to a UTF-8 text file"},
    )


class Babilong:
    """One BABILong task (qa1 … qa5), an :class:`longctx.hooks.evaluation.EvalTask`."""

    def __init__(self, task: str, config: BabilongConfig | None = None, ctx: Any = None) -> None:
        if task not in TASKS:
            raise InputError(f"babilong: unknown task {task!r}; choose from {', '.join(TASKS)}")
        self.task = task
        self.name = f"babilong-{task}"
        self.config = config or BabilongConfig()
        self.labels = TASK_LABELS[task]
        diffusion = "high" if task in ("qa2", "qa3") else "low"
        self.tags = MappingProxyType({"diffusion": diffusion, "scope": "low"})

    @property
    def depth_sensitive(self) -> bool:
        """Depth only moves the facts when they spread over less than the whole background."""
        return self.config.window < 1.0

    def story(self, seed: int) -> Story:
        """The story of ``seed`` (the same at every length and depth)."""
        return make_story(
            self.task, random.Random(derive_seed(self.name, seed, "story", self.config.n_facts)), self.config.n_facts
        )

    def body(self, context: str, question: str) -> str:
        """BABILong's formatted input (``get_formatted_input``) for a context and a question."""
        p = DEFAULT_PROMPTS[self.task]
        c = self.config
        return DEFAULT_TEMPLATE.format(
            instruction=p["instruction"] if c.instruction else "",
            examples=p["examples"] if c.examples else "",
            post_prompt=p["post_prompt"] if c.post_prompt else "",
            context=context,
            question=question,
        ).strip()

    def cases(self, tokenizer: Any, *, length: int, depth: float, seed: int) -> Iterator[Case]:
        """One case of ``length`` tokens (prompt with BOS + ``max_new_tokens``), facts spread around ``depth``."""
        if not 0.0 <= depth <= 1.0:
            raise InputError(f"{self.name}: depth must be between 0 and 1, got {depth}")
        c = self.config
        story = self.story(seed)
        rng = random.Random(derive_seed(self.name, seed, "placement"))
        u = sorted(rng.random() for _ in story.facts)
        start = rng.randrange(1 << 30)
        fractions, window = spread_depths(u, depth, c.window)
        facts = [f.text for f in story.facts]
        filler = _Filler(start, max(length, 64), c.haystack)
        budget = c.max_new_tokens

        def build(n_words: int) -> tuple[str, list[float]]:
            lines, actual = insert_at_depths(filler.take(n_words), facts, fractions)
            prefix = ANSWER_PREFIX if c.answer_prefix else ""
            return render_prompt(tokenizer, self.body(" ".join(lines), story.question), prefix), actual

        try:
            n, text, tokens = fit_length(
                lambda n: build(n)[0], tokenizer, length, hi=filler.total, reserve=budget, tolerance=c.tolerance
            )
        except InputError:
            bare = count_prompt_tokens(tokenizer, build(0)[0]) + budget
            raise InputError(
                f"{self.name}: a length of {length} tokens is too short; the prompt with its "
                f"{len(facts)} facts and no background plus {budget} generated tokens already needs {bare}"
            ) from None
        _, actual = build(n)
        yield Case(
            task=self.name,
            prompt=text,
            answer=story.answer,
            target_tokens=length,
            actual_tokens=tokens,
            depth=depth,
            seed=seed,
            max_new_tokens=budget,
            query=f"Question: {story.question}",
            meta={
                "task": self.task,
                "question": story.question,
                "facts": facts,
                "supporting": list(story.supporting),
                "fact_depths": actual,
                "window": list(window),
                "labels": sorted(self.labels),
                "haystack": c.haystack,
                "background_words": n,
            },
        )

    def score(self, prediction: str, case: Case) -> float:
        """BABILong's ``compare_answers``: 1.0 when the answer is the only unmentioned label in the output."""
        question = case.meta.get("question", case.query or "")
        return 1.0 if compare_answers(case.answer, prediction, question, self.labels) else 0.0


def _builder(task: str):
    def build(config: BabilongConfig, ctx: Any = None) -> Babilong:
        return Babilong(task, config, ctx)

    return build


def __getattr__(name: str) -> Any:
    """``LONGCTX_CONTRACTS``: the conformance kit's contracts for these tasks (imported only when asked)."""
    if name == "LONGCTX_CONTRACTS":
        from longctx.plugins.babilong.contract import CONTRACTS

        return CONTRACTS
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@hookimpl
def lc_register_evaluators(register):
    summaries = {
        "qa1": "single supporting fact: where a person is",
        "qa2": "two supporting facts: where an object is",
        "qa3": "three supporting facts: where an object was before a room",
        "qa4": "two-argument relations between rooms",
        "qa5": "three-argument relations: who gave what to whom",
    }
    for task in TASKS:
        register(
            f"babilong-{task}",
            config=BabilongConfig,
            build=_builder(task),
            summary=f"BABILong {task}: bAbI {summaries[task]}, facts scattered through long prose",
            paper="Kuratov et al. 2024, arXiv:2406.10149; Weston et al. 2015 (bAbI), arXiv:1502.05698",
        )
