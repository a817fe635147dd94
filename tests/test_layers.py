"""Dependencies flow one way, and the mail streams have one owner.

Read from the source with `ast`, function-level imports included: an import cycle held
off by an import inside a function is still a cycle.
"""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SOURCES = sorted([*ROOT.glob("gobarber/**/*.py"), *ROOT.glob("consumers/**/*.py")])

# Importer (module or package prefix) -> what it must never import.
FORBIDDEN = {
    "gobarber.models": ("gobarber.services", "gobarber.mail", "gobarber.api", "gobarber.web"),
    "gobarber.mail": ("gobarber.services", "gobarber.api", "gobarber.web", "consumers"),
    "gobarber.services": ("gobarber.api", "gobarber.web", "consumers"),
    "gobarber.api": ("gobarber.mail", "gobarber.web", "consumers"),
    "gobarber.metrics": ("gobarber.mail", "gobarber.services"),
}

# Every Redis Streams command redis-py offers, and script registration.
STREAM_COMMANDS = {
    "xack",
    "xadd",
    "xautoclaim",
    "xclaim",
    "xdel",
    "xgroup_create",
    "xgroup_createconsumer",
    "xgroup_delconsumer",
    "xgroup_destroy",
    "xgroup_setid",
    "xinfo_consumers",
    "xinfo_groups",
    "xinfo_stream",
    "xlen",
    "xpending",
    "xpending_range",
    "xrange",
    "xread",
    "xreadgroup",
    "xrevrange",
    "xtrim",
    "register_script",
}
STREAM_OWNER = "gobarber.mail.queue"


def module_name(path):
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def tree(path):
    return ast.parse(path.read_text(), filename=str(path))


def imported(path):
    """Every module `path` imports, at any depth of the file."""
    names = set()
    for node in ast.walk(tree(path)):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names |= {f"{node.module}.{alias.name}" for alias in node.names}
    return names


def within(name, prefix):
    return name == prefix or name.startswith(prefix + ".")


@pytest.mark.parametrize("path", SOURCES, ids=module_name)
def test_imports_flow_one_way(path):
    module = module_name(path)
    wrong = sorted(
        name
        for importer, banned in FORBIDDEN.items()
        if within(module, importer)
        for name in imported(path)
        if any(within(name, target) for target in banned)
    )
    assert wrong == [], f"{module} imports {wrong}"


@pytest.mark.parametrize("path", SOURCES, ids=module_name)
def test_only_the_mail_queue_speaks_stream_commands(path):
    if module_name(path) == STREAM_OWNER:
        return
    calls = sorted(
        node.func.attr
        for node in ast.walk(tree(path))
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr in STREAM_COMMANDS
    )
    assert calls == [], f"{module_name(path)} calls {calls}; go through MailQueue"


@pytest.mark.parametrize("path", SOURCES, ids=module_name)
def test_only_the_extensions_module_reads_app_extensions(path):
    if module_name(path) == "gobarber.extensions":
        return
    reads = [
        ast.unparse(node)
        for node in ast.walk(tree(path))
        if isinstance(node, ast.Subscript)
        and isinstance(node.value, ast.Attribute)
        and node.value.attr == "extensions"
    ]
    assert reads == [], f"{module_name(path)} reads {reads}; take it from gobarber.extensions"


def test_the_rules_see_what_they_guard():
    # The checks above would pass vacuously if they found no sources or no calls.
    assert len(SOURCES) > 30
    owner = next(path for path in SOURCES if module_name(path) == STREAM_OWNER)
    owned = {
        node.func.attr
        for node in ast.walk(tree(owner))
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
    }
    assert {"xadd", "xreadgroup", "xack", "xautoclaim", "register_script"} <= owned
    assert "gobarber.mail.outbox" in imported(ROOT / "gobarber/services/appointments.py")
