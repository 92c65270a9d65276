"""NLTK's Lancaster (Paice/Husk) stemmer, the English bots' stemmer, without importing NLTK.

Why a port: ``import nltk`` imports the whole toolkit (scikit-learn and scipy with it), about
100 MB in every server for this one table and its loop (chatbot/text/treebank.py says the same of the
tokenizer). The rules and their order are NLTK's default ones; tests/test_text.py holds the port to
``nltk.stem.lancaster.LancasterStemmer`` word for word.

Original: nltk/stem/lancaster.py, Copyright (C) 2001-2026 NLTK Project, Apache License 2.0.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

MAX_WORD_LEN = 1000  # NLTK's: longer words are returned as they are
VOWELS = "aeiouy"

# Each rule: the word's ending reversed, "*" if the rule applies only to a word no rule has changed
# yet, how many letters to remove, what to append, and ">" to go on stemming or "." to stop.
RULES = (
    "ai*2.",  # -ia > -   if intact
    "a*1.",  # -a > -    if intact
    "bb1.",  # -bb > -b
    "city3s.",  # -ytic > -ys
    "ci2>",  # -ic > -
    "cn1t>",  # -nc > -nt
    "dd1.",  # -dd > -d
    "dei3y>",  # -ied > -y
    "deec2ss.",  # -ceed >", -cess
    "dee1.",  # -eed > -ee
    "de2>",  # -ed > -
    "dooh4>",  # -hood > -
    "e1>",  # -e > -
    "feil1v.",  # -lief > -liev
    "fi2>",  # -if > -
    "gni3>",  # -ing > -
    "gai3y.",  # -iag > -y
    "ga2>",  # -ag > -
    "gg1.",  # -gg > -g
    "ht*2.",  # -th > -   if intact
    "hsiug5ct.",  # -guish > -ct
    "hsi3>",  # -ish > -
    "i*1.",  # -i > -    if intact
    "i1y>",  # -i > -y
    "ji1d.",  # -ij > -id   --  see nois4j> & vis3j>
    "juf1s.",  # -fuj > -fus
    "ju1d.",  # -uj > -ud
    "jo1d.",  # -oj > -od
    "jeh1r.",  # -hej > -her
    "jrev1t.",  # -verj > -vert
    "jsim2t.",  # -misj > -mit
    "jn1d.",  # -nj > -nd
    "j1s.",  # -j > -s
    "lbaifi6.",  # -ifiabl > -
    "lbai4y.",  # -iabl > -y
    "lba3>",  # -abl > -
    "lbi3.",  # -ibl > -
    "lib2l>",  # -bil > -bl
    "lc1.",  # -cl > c
    "lufi4y.",  # -iful > -y
    "luf3>",  # -ful > -
    "lu2.",  # -ul > -
    "lai3>",  # -ial > -
    "lau3>",  # -ual > -
    "la2>",  # -al > -
    "ll1.",  # -ll > -l
    "mui3.",  # -ium > -
    "mu*2.",  # -um > -   if intact
    "msi3>",  # -ism > -
    "mm1.",  # -mm > -m
    "nois4j>",  # -sion > -j
    "noix4ct.",  # -xion > -ct
    "noi3>",  # -ion > -
    "nai3>",  # -ian > -
    "na2>",  # -an > -
    "nee0.",  # protect  -een
    "ne2>",  # -en > -
    "nn1.",  # -nn > -n
    "pihs4>",  # -ship > -
    "pp1.",  # -pp > -p
    "re2>",  # -er > -
    "rae0.",  # protect  -ear
    "ra2.",  # -ar > -
    "ro2>",  # -or > -
    "ru2>",  # -ur > -
    "rr1.",  # -rr > -r
    "rt1>",  # -tr > -t
    "rei3y>",  # -ier > -y
    "sei3y>",  # -ies > -y
    "sis2.",  # -sis > -s
    "si2>",  # -is > -
    "ssen4>",  # -ness > -
    "ss0.",  # protect  -ss
    "suo3>",  # -ous > -
    "su*2.",  # -us > -   if intact
    "s*1>",  # -s > -    if intact
    "s0.",  # -s > -s
    "tacilp4y.",  # -plicat > -ply
    "ta2>",  # -at > -
    "tnem4>",  # -ment > -
    "tne3>",  # -ent > -
    "tna3>",  # -ant > -
    "tpir2b.",  # -ript > -rib
    "tpro2b.",  # -orpt > -orb
    "tcud1.",  # -duct > -duc
    "tpmus2.",  # -sumpt > -sum
    "tpec2iv.",  # -cept > -ceiv
    "tulo2v.",  # -olut > -olv
    "tsis0.",  # protect  -sist
    "tsi3>",  # -ist > -
    "tt1.",  # -tt > -t
    "uqi3.",  # -iqu > -
    "ugo1.",  # -ogu > -og
    "vis3j>",  # -siv > -j
    "vie0.",  # protect  -eiv
    "vi2>",  # -iv > -
    "ylb1>",  # -bly > -bl
    "yli3y>",  # -ily > -y
    "ylp0.",  # protect  -ply
    "yl2>",  # -ly > -
    "ygo1.",  # -ogy > -og
    "yhp1.",  # -phy > -ph
    "ymo1.",  # -omy > -om
    "ypo1.",  # -opy > -op
    "yti3>",  # -ity > -
    "yte3>",  # -ety > -
    "ytl2.",  # -lty > -l
    "yrtsi5.",  # -istry > -
    "yra3>",  # -ary > -
    "yro3>",  # -ory > -
    "yfi3.",  # -ify > -
    "ycn2t>",  # -ncy > -nt
    "yca3>",  # -acy > -
    "zi2>",  # -iz > -
    "zy1s.",  # -yz > -ys
)
_RULE = re.compile(r"([a-z]+)(\*?)(\d)([a-z]*)([>.]?)")


@dataclass(frozen=True)
class Rule:
    """One rule of the table, read."""

    ending: str
    intact_only: bool
    remove: int
    append: str
    stop: bool

    @classmethod
    def parse(cls, text: str) -> Rule:
        """Read a rule as the table writes it."""
        reversed_ending, intact, remove, append, after = _RULE.fullmatch(text).groups()
        return cls(reversed_ending[::-1], intact == "*", int(remove), append, after != ">")


def _rules_by_last_letter() -> dict[str, tuple[Rule, ...]]:
    by_letter: dict[str, list[Rule]] = {}
    for text in RULES:
        by_letter.setdefault(text[0], []).append(Rule.parse(text))
    return {letter: tuple(rules) for letter, rules in by_letter.items()}


_RULES_BY_LAST_LETTER = _rules_by_last_letter()


def stem(word: str) -> str:
    """Return the Lancaster stem of a word, as ``LancasterStemmer().stem(word)`` does."""
    word = intact = word.lower()
    if len(word) > MAX_WORD_LEN:
        return word
    while True:
        last = _last_letter(word)
        if last < 0 or word[last] not in _RULES_BY_LAST_LETTER:
            return word
        for rule in _RULES_BY_LAST_LETTER[word[last]]:
            if (
                word.endswith(rule.ending)
                and (word == intact or not rule.intact_only)
                and _acceptable(word, rule.remove)
            ):
                word = word[: len(word) - rule.remove] + rule.append
                if rule.stop:
                    return word
                break
        else:
            return word


def _last_letter(word: str) -> int:
    """Return the index of the last letter of the word's leading run of letters (-1: none)."""
    position = -1
    for char in word:
        if not char.isalpha():
            break
        position += 1
    return position


def _acceptable(word: str, remove: int) -> bool:
    """Whether what is left after removing letters is long enough to be a stem: two letters after
    a leading vowel, three with a vowel in the first three after a leading consonant."""
    left = len(word) - remove
    if word[0] in VOWELS:
        return left >= 2
    return left >= 3 and (word[1] in VOWELS or word[2] in VOWELS)
