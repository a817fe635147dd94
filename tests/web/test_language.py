"""The pages' language: pt-BR unless the browser prefers English, every text translated.

The catalogues are committed as .po (what a translator edits) and .mo (what the app
reads, from `make translations`): each .mo must say what its .po says, and every text the
pages' templates and views mark for translation must have a pt-BR translation.
"""

import re
from pathlib import Path

import pytest
from babel.messages.extract import extract_from_dir
from babel.messages.mofile import read_mo
from babel.messages.pofile import read_po

from gobarber.web.language import DOMAINS, TRANSLATIONS
from tests.forms import TOKEN

ROOT = Path(__file__).resolve().parents[2]
CATALOGUES = TRANSLATIONS / "pt_BR" / "LC_MESSAGES"
METHODS = [("gobarber/web/**.py", "python"), ("gobarber/templates/pages/**.html", "jinja2")]
KEYWORDS = {
    "_": None,
    "gettext": None,
    "_l": None,
    "lazy_gettext": None,
    "ngettext": (1, 2),
    "pgettext": ((1, "c"), 2),
}


def translated(catalog):
    return {message.id: message.string for message in catalog if message.id and message.string}


def catalogue(domain):
    with open(CATALOGUES / f"{domain}.po", "rb") as source:
        return read_po(source)


@pytest.mark.parametrize("domain", DOMAINS)
def test_each_compiled_catalogue_says_what_its_source_says(domain):
    with open(CATALOGUES / f"{domain}.po", "rb") as source:
        po = read_po(source)
    with open(CATALOGUES / f"{domain}.mo", "rb") as compiled:
        mo = read_mo(compiled)
    assert not po.fuzzy, f"{domain}.po is marked fuzzy: pybabel would not compile it"
    assert translated(mo) == translated(po), f"run make translations ({domain}.mo is stale)"


def test_no_two_domains_translate_one_text_differently():
    # Flask-Babel merges the domains and the last one wins, silently.
    seen, clashes = {}, []
    for domain in DOMAINS:
        for message in catalogue(domain):
            if not (message.id and message.string):
                continue
            key = (message.context, message.id)
            if key in seen and seen[key][1] != message.string:
                clashes.append((message.id, seen[key], (domain, message.string)))
            seen.setdefault(key, (domain, message.string))
    assert clashes == []


def test_every_marked_text_has_a_pt_br_translation():
    known = {}
    for domain in DOMAINS:
        known.update(translated(catalogue(domain)))
    marked = {
        message[2] if isinstance(message[2], str) else message[2][0]
        for message in extract_from_dir(ROOT, METHODS, keywords=KEYWORDS)
    }
    assert marked, "nothing extracted: the extraction paths are wrong"
    assert sorted(marked - set(known)) == []


@pytest.mark.parametrize(
    ("accept", "lang", "heading"),
    [
        (None, "pt-BR", "Entrar"),
        ("pt-BR,pt;q=0.9", "pt-BR", "Entrar"),
        ("en-US,en;q=0.9", "en", "Sign in"),
        ("en-GB,en;q=0.8,pt-BR;q=0.5", "en", "Sign in"),
        ("pt-PT,pt;q=0.9,en;q=0.5", "pt-BR", "Entrar"),
        ("fr-FR,fr;q=0.9", "pt-BR", "Entrar"),
    ],
)
def test_the_browsers_language_picks_english_else_pt_br(client, accept, lang, heading):
    headers = {"Accept-Language": accept} if accept else {}
    page = client.get("/app/sign-in", headers=headers)

    assert page.status_code == 200
    assert f'<html lang="{lang}">' in page.text
    assert re.search(r"<h1>(.*?)</h1>", page.text).group(1) == heading


def test_a_refused_field_is_told_in_the_pages_language(client):
    form = client.get("/app/sign-up").text
    token = TOKEN.search(form).group(1)
    body = {"csrf_token": token, "name": "", "email": "ana@", "password": "123"}

    pt = client.post("/app/sign-up", data=body)
    en = client.post("/app/sign-up", data=body, headers={"Accept-Language": "en"})

    assert (pt.status_code, en.status_code) == (400, 400)
    errors = re.compile(r'class="error" id="[^"]+">(.*?)</p>')
    assert errors.findall(pt.text) == [
        "não pode ficar vazio",
        "não é um endereço de e-mail válido",
        "no mínimo 6 caracteres",
    ]
    assert errors.findall(en.text) == [
        "must not be empty",
        "not a valid e-mail address",
        "at least 6 characters",
    ]
