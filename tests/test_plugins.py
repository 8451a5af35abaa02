"""The handler registry: decorator, step objects, entry points, --plugin, [tool.sagalang] plugins."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from typing import Any

import pytest

from sagalang.errors import HandlerError
from sagalang.plugins import Registry, SagaStep, handler


def test_decorator_marks_and_module_scan(tmp_path: Path) -> None:
    @handler("acme.ping")
    async def ping(ctx: Any, host: str, port: int = 80, **extra: Any) -> dict[str, str]:
        """Ping a host.

        More text."""
        return {"host": host}

    @handler("acme.pong")
    def pong(host: str) -> None:
        return None

    reg = Registry()
    h = reg.add("acme.ping", ping)
    assert h.wants_context and h.info.is_async and h.info.kind == "function"
    assert h.info.params is None  # **extra: any argument is accepted
    assert h.info.doc == "Ping a host."
    p = reg.add("acme.pong", pong).info
    assert [(x.name, x.required, x.annotation) for x in p.params or ()] == [("host", True, "str")]
    with pytest.raises(ValueError, match=r"namespace\.name"):
        handler("nodot")


def test_step_objects_class_or_instance() -> None:
    class Hold:
        """Hold a seat."""

        def execute(self, ctx: Any, seat: str) -> dict[str, str]:
            return {"seat": seat}

        def compensate(self, ctx: Any, seat: str) -> None:
            return None

        def can_compensate(self) -> bool:
            return True

    reg = Registry()
    from_class = reg.add("air.hold", Hold)
    assert from_class.info.kind == "step" and isinstance(from_class.step, Hold)
    assert [x.name for x in from_class.info.params or ()] == ["seat"]
    assert isinstance(from_class.step, SagaStep)
    inst = Hold()
    assert reg.add("air.hold2", inst).step is inst
    with pytest.raises(HandlerError, match="neither callable"):
        reg.add("air.bad", 42)


def _dist(site: Path, name: str, entry_points: str, modules: dict[str, str]) -> None:
    info = site / f"{name}-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(entry_points)
    for mod, text in modules.items():
        (site / f"{mod}.py").write_text(text)


def test_entry_points_are_listed_lazily_and_imported_on_use(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    site = tmp_path / "site"
    site.mkdir()
    _dist(
        site,
        "acme_handlers_dist",
        "[sagalang.handlers]\nacme = acme_mod\nspecial = acme_mod:special_thing\n",
        {
            "acme_mod": (
                "from sagalang.plugins import handler\n"
                "IMPORTED = True\n"
                "@handler('acme.charge')\n"
                "async def charge(amount: float):\n    return {'ok': amount}\n"
                "@handler('special.one')\n"
                "def special_thing(x):\n    return x\n"
            )
        },
    )
    _dist(site, "broken_dist", "[sagalang.handlers]\nbroken = broken_mod\n", {"broken_mod": "import no_such_lib\n"})
    monkeypatch.syspath_prepend(str(site))
    importlib.invalidate_caches()
    monkeypatch.delitem(sys.modules, "acme_mod", raising=False)
    reg = Registry()
    reg.add_entry_points()
    assert {"acme", "special", "broken"} <= reg.namespaces()
    assert "acme_mod" not in sys.modules  # listed without importing
    h = reg.resolve("acme.charge")
    assert h.info.distribution == "acme_handlers_dist"
    assert "acme_mod" in sys.modules
    assert reg.resolve("special.one").info.distribution == "acme_handlers_dist"
    with pytest.raises(HandlerError) as info:
        reg.get("broken.anything")
    text = str(info.value)
    assert "broken_dist" in text and "no_such_lib" in text
    with pytest.raises(HandlerError, match=r"no handler named 'acme\.nope'"):
        reg.resolve("acme.nope")


def test_plugin_module_and_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "mod_plugin_x.py").write_text(
        "from sagalang.plugins import handler\n@handler('m.one')\ndef one():\n    return 1\n"
    )
    (tmp_path / "file_plugin.py").write_text(
        "from sagalang.plugins import handler\n@handler('f.two')\nasync def two(a, b=2):\n    return a\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    reg = Registry()
    assert reg.load_plugin("mod_plugin_x") == ["m.one"]
    assert reg.load_plugin(str(tmp_path / "file_plugin.py")) == ["f.two"]
    assert reg.resolve("f.two").info.source == str(tmp_path / "file_plugin.py")
    with pytest.raises(HandlerError, match="plugin file not found"):
        reg.load_plugin(str(tmp_path / "missing.py"))
    with pytest.raises(HandlerError, match="'no_such_plugin_mod' failed to import"):
        reg.load_plugin("no_such_plugin_mod")


def test_pyproject_plugins(tmp_path: Path) -> None:
    (tmp_path / "handlers").mkdir()
    (tmp_path / "handlers" / "shop.py").write_text(
        "from sagalang.plugins import handler\n@handler('shop.buy')\ndef buy(sku):\n    return sku\n"
    )
    (tmp_path / "pyproject.toml").write_text('[tool.sagalang]\nplugins = ["handlers/shop.py"]\n')
    sub = tmp_path / "specs" / "deep"
    sub.mkdir(parents=True)
    reg = Registry.discover(cwd=sub, entry_points=False)
    assert reg.names() == ["shop.buy"]
    (tmp_path / "pyproject.toml").write_text("[tool.sagalang]\nplugins = 3\n")
    with pytest.raises(HandlerError, match="must be a list"):
        Registry.discover(cwd=sub, entry_points=False)


def test_a_plugin_file_imports_its_neighbours(tmp_path: Path) -> None:
    folder = tmp_path / "plugs"
    folder.mkdir()
    (folder / "neighbour_helpers_x1.py").write_text("def greet(name):\n    return 'hello ' + name\n")
    (folder / "greeter.py").write_text(
        "import neighbour_helpers_x1 as helpers\n"
        "from sagalang.plugins import handler\n\n"
        "@handler('greet.hello')\n"
        "def hello(name: str) -> dict:\n"
        "    return {'text': helpers.greet(name)}\n"
    )
    reg = Registry()
    assert reg.load_plugin(str(folder / "greeter.py")) == ["greet.hello"]
    h = reg.resolve("greet.hello")
    assert h.func is not None and h.func(name="ada") == {"text": "hello ada"}
