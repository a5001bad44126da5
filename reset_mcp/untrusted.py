"""Text that the agent or an outsider wrote: what of it may reach an email, and how it is shown back.

Pure functions, no I/O. `person_name` and `caller_location` decide whether a caller's
text may appear in an email at all (None: the email goes without it); they never repair.
`looks_like_contact_or_link` is the line they hold (and the oracle of the property test):
no URL, domain, email address or phone number from a caller reaches a mailbox under our
sender. `as_data` makes outsiders' text safe to hand to an agent or an approver as data.

Homographs: a name may use any widely used script, but not mix scripts the way spoofs do
(Latin with Cyrillic), and not the rarely used scripts whose letters look like ASCII
punctuation (Lisu "ꓸ", Canadian syllabics "ᐧ"): the Unicode "highly restrictive" level of
UTS #39 over the "recommended" scripts of UAX #31. A character's script is read from its
Unicode name (names never change), which needs no data file beyond `unicodedata`.
"""

from __future__ import annotations

import functools
import re
import unicodedata

__all__ = ["NAME_MAX", "as_data", "caller_location", "looks_like_contact_or_link", "person_name"]

NAME_MAX = 64
PLACE_MAX = 60  # a city or a country; "City, Country" is at most 122

# UAX #31 Table 5 (recommended scripts), keyed by the first word of a character's name.
_SCRIPTS = {
    "ARABIC": "Arab", "ARMENIAN": "Armn", "BENGALI": "Beng", "BOPOMOFO": "Bopo", "CYRILLIC": "Cyrl",
    "DEVANAGARI": "Deva", "ETHIOPIC": "Ethi", "GEORGIAN": "Geor", "GREEK": "Grek", "GUJARATI": "Gujr",
    "GURMUKHI": "Guru", "CJK": "Hani", "IDEOGRAPHIC": "Hani", "HANGUL": "Hang", "HEBREW": "Hebr",
    "HIRAGANA": "Hira", "KATAKANA": "Kana", "KATAKANA-HIRAGANA": "Kana", "KANNADA": "Knda", "KHMER": "Khmr",
    "LAO": "Laoo", "LATIN": "Latn", "MALAYALAM": "Mlym", "MYANMAR": "Mymr", "ORIYA": "Orya", "SINHALA": "Sinh",
    "TAMIL": "Taml", "TELUGU": "Telu", "THAANA": "Thaa", "THAI": "Thai", "TIBETAN": "Tibt",
}  # fmt: skip
# UTS #39 "highly restrictive": one script, or Latin with one of the CJK writing systems.
_CJK_MIXES = ({"Latn", "Hani", "Hira", "Kana"}, {"Latn", "Hani", "Bopo"}, {"Latn", "Hani", "Hang"})
# Apostrophes as names write them: ASCII, typographic, the modifier letter, the Hawaiian ʻokina.
_APOSTROPHES = "'\u2019\u02bc\u02bb"
_HYPHENS = "-\u2010\u2011"  # ASCII, HYPHEN, NON-BREAKING HYPHEN
# U+30FB: the katakana middle dot of "ジョン・スミス".
_NAME_PUNCT = frozenset(" ." + _HYPHENS + _APOSTROPHES + "\u30fb")
_REPEATED_PUNCT = re.compile(r"[-.'\u2010\u2011\u2019\u02bc\u02bb\u30fb]{2}| {2}")

# The contact and link detector works on a "shape" of the text (see `_shape`).
_SCHEME = re.compile(r"(?i)(?<![a-z0-9+.-])[a-z][a-z0-9+.-]{0,31}://")
_OPAQUE_SCHEMES = re.compile(
    r"(?i)(?<![a-z0-9])(?:mailto|tel|sms|callto|javascript|vbscript|data|file|sips?|skype|whatsapp|tg|"
    r"facetime|xmpp|ircs?|magnet|intent|market|itms-services|ms-[a-z-]+):\S"
)
_DOMAIN = re.compile(r"(?<![a0_-])[a0_-]+(?:\.[a0_-]+)+")
_HOST_WITH_PORT_OR_PATH = re.compile(r"\d{1,3}(?:\.\d{1,3}){3}(?::\d|/)|\[[0-9a-fA-F:.]*:[0-9a-fA-F:.]*\]")
_EMAIL_OR_HANDLE = re.compile(r"[a0]@|@[a0]")
# Digits with at most two separators between them; '+' may lead.
_PHONE_RUN = re.compile(r"\+?0(?:[ ]{0,2}0)*")
_IPV4 = re.compile(r"\d{1,3}(?:\.\d{1,3}){3}")
_DEFANGED = re.compile(r"(?i)[\[({]\s*(?:\.|dot)\s*[\])}]|[\[({]\s*(?:@|at)\s*[\])}]|\bhxxps?\b")
# Dots that IDNA (and so browsers) treat as a dot: ideographic, fullwidth, halfwidth.
_IDNA_DOTS = str.maketrans({"\u3002": ".", "\uff0e": ".", "\uff61": ".", "\u2024": "."})
_PHONE_SEPARATORS = frozenset(" -.()/\u00a0\u2010\u2011\u2012\u2013\u2014\u2212")
_VARIATION_SELECTOR = re.compile("[\ufe00-\ufe0f\U000e0100-\U000e01ef]")
_SPACES = re.compile(r"\s+")
# The checks below are pure functions of the text, and the same texts come back: every
# reset's name is checked when it is requested and again when its email is rendered,
# device and location labels repeat across requests. Short texts are remembered (a few
# MB at most); a hostile long one is checked afresh and never kept.
_MEMO_SIZE = 4096
_MEMO_MAX_LEN = 256


def _script(ch: str) -> str | None:
    """The recommended script of a letter or mark, "" for a combining mark, None if not recommended."""
    name = unicodedata.name(ch, "")
    if unicodedata.category(ch).startswith("M") and name.startswith("COMBINING"):
        return ""  # script "Inherited": takes the script of the letter before it
    return _SCRIPTS.get(name.split(" ", 1)[0])


def _scripts_ok(scripts: set[str]) -> bool:
    return len(scripts) <= 1 or any(scripts <= mix for mix in _CJK_MIXES)


def _words(value: str, limit: int) -> str | None:
    """Letters of recommended scripts with spaces, apostrophes, hyphens and dots; else None."""
    text = _SPACES.sub(" ", unicodedata.normalize("NFC", value)).strip() if value.isprintable() else ""
    if not text or len(text) > limit or _REPEATED_PUNCT.search(text):
        return None
    scripts: set[str] = set()
    previous_is_letter = False
    for ch in text:
        if ch in _NAME_PUNCT:
            previous_is_letter = False
            continue
        category = unicodedata.category(ch)
        if category[0] not in "LM" or (category[0] == "M" and not previous_is_letter):
            return None  # digits, symbols, other punctuation; or a mark with no letter under it
        script = _script(ch)
        if script is None:
            return None
        if script:
            scripts.add(script)
        previous_is_letter = True
    if not scripts or not unicodedata.category(text[0]).startswith("L") or not _scripts_ok(scripts):
        return None
    return text


def person_name(value: str | None) -> str | None:
    """The name to greet someone by, if it is plainly a name; None otherwise (greet without one).

    Letters of any widely used script, spaces, apostrophes, hyphens and dots; at most 64
    characters; starting with a letter; no doubled punctuation; no mixed-script spoof; and
    nothing `looks_like_contact_or_link` flags (so "acme-login.example.net" is no name).
    """
    if not isinstance(value, str):
        return None
    return _person_name_memo(str(value)) if len(value) <= _MEMO_MAX_LEN else _person_name(value)


def _person_name(value: str) -> str | None:
    name = _words(value, NAME_MAX)
    if name is None or looks_like_contact_or_link(name):
        return None
    return name


_person_name_memo = functools.lru_cache(maxsize=_MEMO_SIZE)(_person_name)


def caller_location(value: str | None) -> str | None:
    """A caller's "City, Country" of letters, as "City, Country"; None otherwise."""
    if not isinstance(value, str) or value.count(",") != 1:
        return None
    city, country = (_words(part, PLACE_MAX) for part in value.split(","))
    if city is None or country is None:
        return None
    location = f"{city}, {country}"
    return None if looks_like_contact_or_link(location) else location


def _prepare(text: str) -> str:
    """NFKC (fullwidth and mathematical letters and digits become plain ones), the IDNA dots
    read as dots, invisible format characters dropped (a zero-width space inside
    "example.com" hides nothing), defanged forms undone ("example[.]com", "hxxps")."""
    text = unicodedata.normalize("NFKC", text).translate(_IDNA_DOTS)
    if not text.isprintable():
        text = "".join(ch for ch in text if unicodedata.category(ch) != "Cf")
    return _DEFANGED.sub(_undefang, text)


def _undefang(match: re.Match[str]) -> str:
    found = match.group().lower()
    if found.startswith("hxxp"):
        return "http" + found[4:]
    return "@" if "@" in found or "at" in found else "."


def _shape(text: str) -> str:
    """Each letter or mark as 'a', each digit as '0', '.-_@' kept, anything else a space.

    Script-blind on purpose: "пример.рф" and "bücher.de" are domains too. One character
    for one character, so a match's span is the same in the text.
    """
    out = []
    for ch in text:
        category = unicodedata.category(ch)
        if category[0] in "LM":
            out.append("a")
        elif category == "Nd":
            out.append("0")
        elif ch in ".-_@":
            out.append(ch)
        else:
            out.append(" ")
    return "".join(out)


def _has_domain(shape: str) -> bool:
    for match in _DOMAIN.finditer(shape):
        last = match.group().rsplit(".", 1)[1]
        # A top-level domain is at least two characters and never all digits (RFC 3696 2),
        # which keeps "10.15" and "198.51.100.7" out and every real TLD, any script, in.
        if len(last) >= 2 and "a" in last:
            return True
    return False


def _has_phone_number(text: str) -> bool:
    shape = "".join(
        "0" if unicodedata.category(ch) == "Nd" else " " if ch in _PHONE_SEPARATORS else "+" if ch == "+" else "x"
        for ch in text
    )
    for match in _PHONE_RUN.finditer(shape):
        run = match.group()
        digits = run.count("0")
        if _IPV4.fullmatch(text[match.start() : match.end()]):
            continue  # an IPv4 address is shown as a fact, and flagged as a link only with a port or path
        # The shortest national numbers in use have four or five digits (Niue, Tokelau,
        # St Helena); international ones carry their country code. See the module's test.
        if digits >= 5 or (run.startswith("+") and digits >= 4):
            return True
    return False


def looks_like_contact_or_link(text: str) -> bool:
    """True when `text` holds a URL, a bare domain, an email address or handle, or a phone number.

    Errs towards True: it guards what may reach an email, where a false alarm costs a
    greeting without a name and a miss costs a phishing link under our sender. Catches
    IDN and punycode domains, fullwidth and ideographic dots, defanged forms such as
    "example[.]com" and "hxxps", and numbers in any script's digits. Spelled-out
    addresses ("example dot com") are out of its reach: names come from the directory.
    """
    if not text:
        return False
    return _looks_memo(str(text)) if len(text) <= _MEMO_MAX_LEN else _looks_like_contact_or_link(text)


def _looks_like_contact_or_link(text: str) -> bool:
    text = _prepare(text)
    if _SCHEME.search(text) or _OPAQUE_SCHEMES.search(text) or _HOST_WITH_PORT_OR_PATH.search(text):
        return True
    shape = _shape(text)
    if "." in shape and _has_domain(shape):
        return True
    if "@" in shape and _EMAIL_OR_HANDLE.search(shape):
        return True
    return _has_phone_number(text)


_looks_memo = functools.lru_cache(maxsize=_MEMO_SIZE)(_looks_like_contact_or_link)


def as_data(text: str, limit: int) -> str:
    """Outsiders' text fit to show as data: one line, nothing invisible, at most `limit` characters.

    Control, format (bidi overrides and isolates, zero-width characters, the tag
    characters that can smuggle hidden ASCII), surrogate, private-use and unassigned
    code points go; so do variation selectors, which can carry hidden bytes too. Every
    run of whitespace, line breaks included, becomes one space. A cut ends with "…".
    """
    if limit <= 0 or not text:
        return ""
    bound = limit * 4 + 64  # bound the work on hostile input; the cut below decides the length
    cut = len(text) > bound
    text = text[:bound]
    if not (text.isprintable() and not _VARIATION_SELECTOR.search(text)):
        kept = []
        for ch in text:
            category = unicodedata.category(ch)
            if category in ("Zl", "Zp", "Zs") or ch in "\t\n\r\x0b\x0c\x1c\x1d\x1e\x1f\x85":
                kept.append(" ")
            elif category[0] != "C" and not _VARIATION_SELECTOR.match(ch):
                kept.append(ch)
        text = "".join(kept)
    text = _SPACES.sub(" ", text).strip()
    if cut or len(text) > limit:
        return text[: limit - 1].rstrip() + "…"
    return text
