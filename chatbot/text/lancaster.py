"""Stem English words with the Lancaster (Paice/Husk) algorithm, the English bots' stemmer.

The algorithm and its rule table are Chris Paice's ("Another Stemmer", SIGIR Forum 24(3), 1990,
developed with Gareth Husk at Lancaster University); see NOTICE. The code is the project's own, so
that an English bot's server never imports NLTK (which brings scikit-learn and scipy); the tests
hold it to NLTK's LancasterStemmer stem for stem.

How it works: a word is looked up by its last letter in a table of suffix rules. The first rule
whose suffix the word ends with, and whose result would still look like a stem, removes some
letters, may append others, and either stops or sends the shorter word round again.
"""

from __future__ import annotations

from dataclasses import dataclass

# Paice and Husk's published rule table, in their notation and order, one line per final letter.
# Each rule reads: the suffix written backwards; "*" if the rule applies only to a word no rule
# has changed yet; how many letters to remove; letters to append (often none); ">" to look for
# another rule afterwards or "." to stop. So "sei3y>" turns "...ies" into "...y" and goes on.
PAICE_HUSK_TABLE = """
a: ai*2. a*1.
b: bb1.
c: city3s. ci2> cn1t>
d: dd1. dei3y> deec2ss. dee1. de2> dooh4>
e: e1>
f: feil1v. fi2>
g: gni3> gai3y. ga2> gg1.
h: ht*2. hsiug5ct. hsi3>
i: i*1. i1y>
j: ji1d. juf1s. ju1d. jo1d. jeh1r. jrev1t. jsim2t. jn1d. j1s.
l: lbaifi6. lbai4y. lba3> lbi3. lib2l> lc1. lufi4y. luf3> lu2. lai3> lau3> la2> ll1.
m: mui3. mu*2. msi3> mm1.
n: nois4j> noix4ct. noi3> nai3> na2> nee0. ne2> nn1.
p: pihs4> pp1.
r: re2> rae0. ra2. ro2> ru2> rr1. rt1> rei3y>
s: sei3y> sis2. si2> ssen4> ss0. suo3> su*2. s*1> s0.
t: tacilp4y. ta2> tnem4> tne3> tna3> tpir2b. tpro2b. tcud1. tpmus2. tpec2iv. tulo2v. tsis0. tsi3> tt1.
u: uqi3. ugo1.
v: vis3j> vie0. vi2>
y: ylb1> yli3y> ylp0. yl2> ygo1. yhp1. ymo1. ypo1. yti3> yte3> ytl2. yrtsi5. yra3> yro3> yfi3. ycn2t> yca3>
z: zi2> zy1s.
"""

# "y" counts as a vowel in the stem test below.
VOWELS = frozenset("aeiouy")
# Longer words are returned lower-cased but unstemmed, as NLTK does (chatbot.text.tokens stems only
# words of up to 40 characters anyway).
MAX_STEMMED_CHARS = 1000


@dataclass(frozen=True, slots=True)
class SuffixRule:
    """One line of the table, spelled forwards."""

    suffix: str
    only_if_unchanged: bool
    remove: int
    append: str
    go_on: bool


def parse_rule(notation: str) -> SuffixRule:
    """Read one rule written in Paice's notation, such as "sei3y>"."""
    digit_at = next(position for position, char in enumerate(notation) if char.isdigit())
    backwards_suffix = notation[:digit_at].rstrip("*")
    return SuffixRule(
        suffix=backwards_suffix[::-1],
        only_if_unchanged=notation[:digit_at].endswith("*"),
        remove=int(notation[digit_at]),
        append=notation[digit_at + 1 : -1],
        go_on=notation.endswith(">"),
    )


def parse_table(table: str) -> dict[str, tuple[SuffixRule, ...]]:
    """Index the table's rules by the final letter they apply to, keeping the table's order."""
    rules_by_letter: dict[str, tuple[SuffixRule, ...]] = {}
    for line in table.strip().splitlines():
        letter, notations = line.split(":")
        rules_by_letter[letter] = tuple(parse_rule(notation) for notation in notations.split())
    return rules_by_letter


RULES_BY_FINAL_LETTER = parse_table(PAICE_HUSK_TABLE)


def stem(word: str) -> str:
    """Return the Lancaster stem of a word, lower-cased ("maximum" -> "maxim", "running" -> "run")."""
    word = word.lower()
    if len(word) > MAX_STEMMED_CHARS:
        return word
    unchanged = True
    while True:
        rule = _first_applicable_rule(word, unchanged)
        if rule is None:
            return word
        word = word[: len(word) - rule.remove] + rule.append
        unchanged = False
        if not rule.go_on:
            return word


def _first_applicable_rule(word: str, unchanged: bool) -> SuffixRule | None:
    """Return the first rule, in table order, that the word's ending calls for and that leaves a stem."""
    for rule in RULES_BY_FINAL_LETTER.get(_final_letter(word), ()):
        if rule.only_if_unchanged and not unchanged:
            continue
        if word.endswith(rule.suffix) and _leaves_a_stem(word, rule.remove):
            return rule
    return None


def _final_letter(word: str) -> str:
    """Return the last letter of the word's leading run of letters ("" if it starts otherwise)."""
    if word.isalpha():  # nearly every word: no need to look for the run's end
        return word[-1]
    letters = 0
    while letters < len(word) and word[letters].isalpha():
        letters += 1
    return word[letters - 1] if letters else ""


def _leaves_a_stem(word: str, remove: int) -> bool:
    """Whether removing letters leaves a plausible stem, by Paice's test: a word that starts with a
    vowel keeps at least two letters; one that starts with a consonant keeps three, and its second
    or third letter is a vowel."""
    kept_letters = len(word) - remove
    if word[0] in VOWELS:
        return kept_letters >= 2
    return kept_letters >= 3 and (word[1] in VOWELS or word[2] in VOWELS)
