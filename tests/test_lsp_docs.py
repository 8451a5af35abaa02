"""docs/editors.md: every editor configuration is an included file, and each one starts `sagalang lsp`
with options the server and the VS Code extension really have."""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
PAGE = DOCS / "editors.md"
CONFIGS = DOCS / "examples" / "editors"
SERVER_OPTIONS = {"debounce_ms"}  # what sagalang.lsp.server reads from initializationOptions


def test_the_page_includes_every_configuration_and_writes_none_inline() -> None:
    text = PAGE.read_text(encoding="utf-8")
    included = set(re.findall(r'^--8<-- "examples/editors/([^"]+)"$', text, re.M))
    assert included == {p.name for p in CONFIGS.iterdir()}
    for lang, _ in re.findall(r"^```(\w+)\n(.*?)^```", text, re.S | re.M):
        assert lang == "sh", f"inline {lang} block in editors.md"
    for editor in ("VS Code", "Neovim (nvim-lspconfig)", "Helix", "Emacs (eglot)"):
        assert f"## {editor}" in text


def test_the_page_is_in_the_site_navigation() -> None:
    class Loader(yaml.SafeLoader):
        pass

    Loader.add_multi_constructor("tag:yaml.org,2002:python/", lambda loader, suffix, node: None)
    nav = yaml.load((ROOT / "mkdocs.yml").read_text(encoding="utf-8"), Loader=Loader)["nav"]
    assert "editors.md" in json.dumps(nav)


def test_helix_starts_the_server_with_known_options() -> None:
    config = tomllib.loads((CONFIGS / "helix-languages.toml").read_text(encoding="utf-8"))
    server = config["language-server"]["sagalang"]
    assert (server["command"], server["args"]) == ("sagalang", ["lsp"])
    assert set(server["config"]) <= SERVER_OPTIONS
    [language] = config["language"]
    assert language["file-types"] == ["saga"] and language["language-servers"] == ["sagalang"]


def test_neovim_and_emacs_start_the_server() -> None:
    lua = (CONFIGS / "nvim-lspconfig.lua").read_text(encoding="utf-8")
    assert 'cmd = { "sagalang", "lsp" }' in lua and 'filetypes = { "saga" }' in lua
    assert set(re.findall(r"init_options = \{ (\w+) =", lua)) <= SERVER_OPTIONS
    el = (CONFIGS / "eglot.el").read_text(encoding="utf-8")
    assert '(saga-mode "sagalang" "lsp"' in el
    assert {m.lstrip(":") for m in re.findall(r"\(:(\w+) ", el)} <= SERVER_OPTIONS
    assert el.count("(") == el.count(")")


def test_vscode_settings_are_the_extensions() -> None:
    settings = json.loads((CONFIGS / "vscode-settings.json").read_text(encoding="utf-8"))
    manifest = json.loads((ROOT / "editors" / "vscode" / "package.json").read_text(encoding="utf-8"))
    properties = manifest["contributes"]["configuration"]["properties"]
    assert {k for k in settings if not k.startswith("[")} <= set(properties)
    assert settings["sagalang.server.args"][0] == "lsp"
    assert "[saga]" in settings and manifest["contributes"]["languages"][0]["id"] == "saga"
    client = (ROOT / "editors" / "vscode" / "extension.js").read_text(encoding="utf-8")
    assert {m for m in re.findall(r"initializationOptions: \{ (\w+):", client)} <= SERVER_OPTIONS
    for key in properties:
        assert f'"{key.removeprefix("sagalang.")}"' in client, key
