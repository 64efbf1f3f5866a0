"""The emulator's answers: plausible, deterministic functions of the request's text."""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from collections import Counter
from dataclasses import dataclass, field

NOTE_PATH = re.compile(r"^Note path: (.+?)\s*$", re.M)
TITLE = re.compile(r"^Title: (.+?)\s*$", re.M)
BODY = re.compile(r"<note>\n?(.*?)\n?</note>", re.S)
CANDIDATE = re.compile(r"^- \[\[([^\]\n]+)\]\](?: \(([^\n]*)\))?", re.M)  # name (path)
TAXONOMY = re.compile(r"^Existing tags in this vault: (.+)$", re.M)
WORD = re.compile(r"[^\W\d_]\w*(?:-\w+)*", re.U)
BODY_WINDOW = 3000  # the emulator reads this much of a note: enough for plausible answers

STOPWORDS = frozenset(
    """a about above after again against all also am an and any are as at be because been before
    being below between both but by can could did do does doing down during each few for from
    further had has have having he her here hers herself him himself his how however i if in into
    is it its itself just let me more most my myself no nor not now of off on once only or other
    our ours ourselves out over own same she should so some such than that the their theirs them
    themselves then there these they this those through to too under until up very was we were
    what when where which while who whom why will with would you your yours yourself yourselves
    note notes page pages also etc using used use via one two new like get make see may might
    must shall within without into onto upon much many every thing things way ways something
    http https www com md don doesn didn isn aren wasn won can't""".split()
)



def text_of(content) -> str:
    """The text of a message's or system prompt's content (a string or a list of blocks)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(
            b.get("text", "") for b in content if isinstance(b, dict) and b.get("type") == "text"
        )
    return ""



# --- Answers: plausible, deterministic functions of the request -------------------------------


@dataclass
class Prompt:
    note_key: str
    title: str
    body: str
    candidates: list[str]
    taxonomy: list[str]
    system: str
    user: str
    candidate_paths: dict[str, str] = field(default_factory=dict)  # name -> path, as listed


def read_prompt(params: dict) -> Prompt:
    system = text_of(params.get("system") or "")
    user = "\n".join(
        text_of(m.get("content")) for m in params.get("messages", []) if m.get("role") == "user"
    )
    path = NOTE_PATH.search(user)
    title = TITLE.search(user)
    body = BODY.search(user)
    taxonomy = TAXONOMY.search(system) or TAXONOMY.search(user)
    if path:
        key = path.group(1)
    else:
        key = "sha1:" + hashlib.sha1(
            json.dumps(params.get("messages"), sort_keys=True, default=str).encode()
        ).hexdigest()
    return Prompt(
        note_key=key,
        title=title.group(1) if title else "",
        body=body.group(1) if body else user,
        candidates=[name for name, _ in CANDIDATE.findall(user)],
        candidate_paths={name: path for name, path in CANDIDATE.findall(user) if path},
        taxonomy=[t.strip() for t in taxonomy.group(1).split(",") if t.strip()] if taxonomy else [],
        system=system,
        user=user,
    )


# Words a note uses without being about them: a model does not tag a note "give" or "day".
GENERIC = frozenset(
    """able add added adds again ago ahead almost already always another anything around ask
    away back bad became become becomes begin best better big bit bring build built call called
    came case change come comes coming continue could day days done during early easy else end
    enough even ever every example fact far feel few find first five follow found four full
    get gets give given gives go goes going gone good got great group half hand happen hard help
    high hold hour hours idea important include including keep kept kind know known large last
    later least leave left less let level lies life little long look looking looks lot lots low
    made main make makes making maybe mean means meet minute minutes month months morning much
    name need needs never next nice night nine number off often old open order others part
    people per person place plan point possible put quite rather read real really right run
    said same say says second seems seven several short show side since six small start started
    still stop sure take taken takes tell ten than thank thing things think third three time
    times today told tomorrow took top total try turn type under usually want wants way week
    weeks well went whole work works year years yes yesterday yet monday tuesday wednesday
    thursday friday saturday sunday january february march april june july august september
    october november december
    archive archived index inbox misc untitled readme draft drafts todo null none true false
    folder folders file files template templates""".split()
)  # the last lines name a vault's shelves, not what a note is about
HEADING = re.compile(r"^#{1,6}\s+(.+)$", re.M)
MAX_EMULATED_TAGS = 5


# Chinese and Japanese are written without spaces and Korean ties particles to its words: a
# model reads the terms inside, never a whole clause as one word.
HAN = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
KANA = "\u3040-\u30ff\u31f0-\u31ff"
CJK = re.compile(f"[{HAN}{KANA}]")
JAPANESE_TERM = re.compile(f"[\u30a0-\u30ff\u31f0-\u31ff]{{2,}}|[{HAN}]{{2,}}")  # katakana, kanji
# Chinese words that tie others together rather than name a thing: a clause is cut at them.
CHINESE_GLUE = re.compile("[的了在是和有与及或每就都也而把被对从到让向这那个我你他她它们一不很要会可能以为于上下中之等时其]+")
HANGUL = re.compile("[\uac00-\ud7a3]")
KOREAN_PARTICLES = sorted(
    """에서는 에게서 으로는 으로써 까지는 부터는 이라는 에서 에게 에는 으로 까지 부터 처럼 보다
    이나 이랑 하고 에도 라는 은 는 이 가 을 를 에 의 와 과 도 로 만 랑 나""".split(),
    key=len, reverse=True)  # fmt: skip
LONGEST_TERM = 6


def _cjk_terms(word: str) -> list[str]:
    """The terms a run of Chinese or Japanese holds: Japanese at its kana (kanji compounds and
    katakana words are its content words), Chinese at the characters that tie words together;
    a piece too long to be one term gives its character pairs."""
    if re.search(f"[{KANA}]", word):
        pieces = JAPANESE_TERM.findall(word)
    else:
        pieces = [p for p in CHINESE_GLUE.split(word) if len(p) >= 2]
    terms = []
    for piece in pieces:
        if len(piece) <= LONGEST_TERM or not re.match(f"[{HAN}]", piece):  # katakana: one word
            terms.append(piece)
        else:
            terms.extend(piece[i : i + 2] for i in range(len(piece) - 1))
    return terms


def _korean_term(word: str) -> str:
    """A Korean word without the particle written onto it (`된장찌개에는` -> `된장찌개`)."""
    for particle in KOREAN_PARTICLES:
        if word.endswith(particle) and len(word) - len(particle) >= 2:
            return word[: -len(particle)]
    return word


def keywords(text: str) -> list[str]:
    # Composed first: a decomposed accent (as macOS stores names) would cut `crème` at the è,
    # and decomposed Hangul is not syllables at all.
    found = []
    for word in WORD.findall(unicodedata.normalize("NFC", text).lower()):
        if CJK.search(word):
            found.extend(_cjk_terms(word))
        elif HANGUL.search(word):
            term = _korean_term(word)
            if len(term) >= 2 and not term.endswith(("다", "요")):  # a verb ends the sentence
                found.append(term)
        elif len(word) > 2:
            found.append(word)
    return found


def stem(word: str) -> str:
    return word[:-1] if word.endswith("s") and len(word) > 4 else word


def _telling(word: str) -> bool:
    return word not in STOPWORDS and word not in GENERIC and stem(word) not in GENERIC


def ranked_words(prompt: Prompt) -> list[str]:
    """The note's salient words, most telling first: title words count thrice and headings
    twice; words any note uses (GENERIC) are left out; plural `s` folded."""
    body = prompt.body[:BODY_WINDOW]
    counts = Counter(w for w in keywords(body) if _telling(w))
    title = [w for w in keywords(prompt.title) if _telling(w)]
    for w in title:
        counts[w] += 3
    for heading in HEADING.findall(body):
        for w in keywords(heading):
            if _telling(w):
                counts[w] += 1
    if not prompt.note_key.startswith("sha1:"):  # the folders it sits in say what it is about
        for w in keywords(" ".join(prompt.note_key.split("/")[:-1])):
            if _telling(w):
                counts[w] += 2
    first = {w: i for i, w in enumerate(dict.fromkeys(title + keywords(body)))}
    ranked, stems = [], set()
    for w in sorted(counts, key=lambda w: (-counts[w], first.get(w, 0))):
        if stem(w) not in stems:  # "agent" and "agents" make one tag word, not two
            stems.add(stem(w))
            ranked.append(w)
    return ranked


def answer_tags(prompt: Prompt, words: list[str]) -> list[str]:
    """Tags as a model would pick them: the vault's own tags that fit the note's salient words
    (the most specific first), then the note's most telling words the vault has no tag for."""
    weight = {stem(w): 12 - i for i, w in enumerate(words[:12])}
    fitting = []
    for order, tag in enumerate(prompt.taxonomy):
        parts = [stem(p) for p in re.split(r"[/-]", tag.lower()) if p]
        score = sum(weight.get(p, 0) for p in parts)
        if score and weight.get(parts[-1] if parts else "", 0):  # its own leaf fits
            fitting.append((-score, -len(parts), order, tag.lower()))
        elif parts and weight.get(parts[0], 0):  # only its root does: the root is the tag
            fitting.append((-weight[parts[0]], -1, order, tag.lower().split("/")[0]))
    chosen: list[str] = []
    for *_, tag in sorted(fitting):
        if tag not in chosen and not any(c.startswith(tag + "/") or tag.startswith(c + "/")
                                         for c in chosen):  # fmt: skip
            chosen.append(tag)
        if len(chosen) == 3:
            break
    covered = {stem(p) for tag in chosen for p in re.split(r"[/-]", tag)}
    for word in words:
        if len(chosen) >= MAX_EMULATED_TAGS or (chosen and len(chosen) >= 3):
            break
        if stem(word) not in covered and not any(ch.isdigit() for ch in word):
            chosen.append(word)
            covered.add(stem(word))
    return chosen or [words[0] if words else "misc"]


CODE_BLOCK = re.compile(r"```.*?```", re.S)
WIKILINK = re.compile(r"!?\[\[([^\]|]+)(?:\|([^\]]+))?\]\]")
MD_LINK = re.compile(r"\[([^\]]+)\]\([^)]*\)")
EMPHASIS = re.compile(r"[*`~]+|(?<!\w)_+|_+(?!\w)")  # keeps snake_case words whole
SPACES = re.compile(r"\s+")
SENTENCE = re.compile(r"(.+?(?:[.!?](?=\s|$)|[。！？]))")
TASK_OR_TEMPLATE = re.compile(r"^[-*+] \[.\]|<%|\{\{")  # a checklist item, Templater, {{date}}


def answer_description(prompt: Prompt) -> str:
    text = CODE_BLOCK.sub(" ", prompt.body[:1500])  # the opening says enough
    lines = [ln.strip() for ln in text.splitlines()]
    prose = " ".join(ln for ln in lines if ln and not ln.startswith(("#", "|", "---", ">"))
                     and not TASK_OR_TEMPLATE.search(ln))  # fmt: skip
    prose = WIKILINK.sub(lambda m: m.group(2) or m.group(1), prose)
    prose = MD_LINK.sub(r"\1", prose)
    prose = EMPHASIS.sub("", prose)
    prose = SPACES.sub(" ", prose).strip()
    match = SENTENCE.match(prose)
    sentence = match.group(1) if match else prose
    if len(sentence) > 200:
        sentence = sentence[:197].rsplit(" ", 1)[0] + "..."
    if len(sentence) < 20:
        subject = prompt.title or (prose[:60] if prose else "this topic")
        sentence = f"Notes on {subject}." if not sentence else f"Notes on {subject}: {sentence}"
    return sentence


RELATED_WINDOW = 4


def answer_related(prompt: Prompt, words: list[str]) -> list[str]:
    """From the top of the candidate list (ranked by the app; a model trusts the first few
    more than a name that shares one word far down): of the first RELATED_WINDOW, those whose
    names share the note's telling words, in the list's order; else those in its folder (a
    model reads the listed paths too); else the first candidate alone."""
    mine = {stem(w) for w in words[:40]}
    folder = prompt.note_key.rpartition("/")[0]
    top = prompt.candidates[:RELATED_WINDOW]
    picked = [name for name in top if mine & {stem(w) for w in keywords(name)}][:3]
    if not picked and folder:
        picked = [name for name in top
                  if prompt.candidate_paths.get(name, "").rpartition("/")[0] == folder][:3]
    if not picked and prompt.candidates:
        picked = [prompt.candidates[0]]
    return picked


TAG_LINE = re.compile(r"^- (\S+) \((\d+)\):", re.M)
ALIASES = {"js": "javascript", "ts": "typescript", "py": "python", "ml": "machine-learning"}


def _tag_key(tag: str) -> str:
    """Tags that differ only by case, a plural `s` or a known abbreviation share a key."""
    parts = []
    for part in tag.lower().split("/"):
        part = ALIASES.get(part, part)
        parts.append(part[:-1] if part.endswith("s") and len(part) > 3 else part)
    return "/".join(parts)


def answer_merges(prompt: Prompt) -> list[dict]:
    """Tag consolidation: every tag sharing a key with a more used one merges into it; an
    abbreviation moves onto the tag ending in its full word."""
    listed = [(tag, int(n)) for tag, n in TAG_LINE.findall(prompt.user)]
    by_key: dict[str, list[tuple[str, int]]] = {}
    for tag, n in listed:
        by_key.setdefault(_tag_key(tag), []).append((tag, n))
    merges = []
    for group in by_key.values():
        if len(group) < 2:
            continue
        keep = sorted(group, key=lambda tn: (-tn[1], tn[0] != tn[0].lower(), tn[0]))[0][0]
        for tag, _ in group:
            if tag != keep:
                merges.append({"old": tag, "new": keep, "reason": "same tag spelled differently"})
    for tag, _ in listed:
        full = ALIASES.get(tag.lower())
        target = next((t for t, _ in listed if full and t.lower().endswith("/" + full)), None)
        if target:
            merges.append({"old": tag, "new": target, "reason": f"{tag} is short for {full}"})
    return merges


def answer_for(prompt: Prompt, schema: dict) -> dict:
    """The structured answer, with exactly the properties the schema asks for."""
    words = ranked_words(prompt)
    props = schema.get("properties") or {}
    out: dict = {}
    for key, spec in props.items():
        if key == "tags":
            out[key] = answer_tags(prompt, words)
        elif key == "description":
            out[key] = answer_description(prompt)
        elif key == "related":
            out[key] = answer_related(prompt, words)
        elif key == "merges":
            out[key] = answer_merges(prompt)
        else:
            kind = spec.get("type") if isinstance(spec, dict) else None
            out[key] = {"array": [], "integer": 0, "number": 0, "boolean": False,
                        "object": {}}.get(kind, "")
    return out


