"""Loading a user's strategy (strategy.py): from ``--strategy-path`` directories, the working
directory (as ``python -m`` would), or the installed packages, with errors that say where it
looked and what to do; cross-parameter checks and ``warmup_bars``."""

from __future__ import annotations

import os
import sys

import pytest

from workbench.errors import ConfigError
from workbench.strategy import (
    Strategy,
    load_strategy_class,
    search_dirs,
    strategy_identity,
)

SOURCE = "from workbench import Strategy\n\nclass Mine(Strategy):\n    class Inner(Strategy):\n" \
         "        pass\n"


@pytest.fixture(autouse=True)
def _isolated_imports(monkeypatch: pytest.MonkeyPatch) -> None:
    """sys.path and the imported modules are restored after each test."""
    monkeypatch.setattr(sys, "path", list(sys.path))
    before = set(sys.modules)
    yield
    for name in set(sys.modules) - before:
        if name.startswith("wbnew_"):
            del sys.modules[name]


def test_load_strategy_class_module_in_working_directory_imported(tmp_path, monkeypatch):
    (tmp_path / "wbnew_cwd_mod.py").write_text(SOURCE, encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    sys.path[:] = [p for p in sys.path if p not in ("", ".", str(tmp_path))]
    cls = load_strategy_class("wbnew_cwd_mod:Mine")
    assert cls.__name__ == "Mine"
    assert strategy_identity(cls) == "wbnew_cwd_mod:Mine"


def test_load_strategy_class_strategy_path_pathsep_entries_searched_first(tmp_path,
                                                                          monkeypatch):
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    (b / "wbnew_path_mod.py").write_text(SOURCE, encoding="utf-8")
    monkeypatch.chdir(a)
    cls = load_strategy_class("wbnew_path_mod:Mine", paths=[f"{a}{os.pathsep}{b}"])
    assert cls.__module__ == "wbnew_path_mod"
    assert sys.path[:2] == [str(a), str(b)]


def test_load_strategy_class_dotted_qualname_resolves_nested_class(tmp_path):
    (tmp_path / "wbnew_nested_mod.py").write_text(SOURCE, encoding="utf-8")
    cls = load_strategy_class("wbnew_nested_mod:Mine.Inner", paths=[tmp_path])
    assert cls.__qualname__ == "Mine.Inner"


def test_load_strategy_class_module_not_found_error_names_module_paths_fix(tmp_path,
                                                                           monkeypatch):
    monkeypatch.chdir(tmp_path)
    extra = tmp_path / "extra"
    extra.mkdir()
    with pytest.raises(ConfigError) as info:
        load_strategy_class("wbnew_missing.sub:Mine", paths=[extra])
    err = info.value
    assert err.where == "strategy.class"
    assert "cannot import strategy module 'wbnew_missing.sub'" in err.what
    assert "no wbnew_missing/sub.py" in err.what
    assert str(extra.resolve()) in err.what and str(tmp_path.resolve()) in err.what
    assert "--strategy-path DIR" in (err.fix or "")
    assert "strategy.path" in (err.fix or "")
    assert "run_backtest(config, strategy=MyStrategy)" in (err.fix or "")


def test_load_strategy_class_missing_dependency_error_names_dependency(tmp_path):
    (tmp_path / "wbnew_dep_mod.py").write_text("import wbnew_not_installed\n", encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_strategy_class("wbnew_dep_mod:Mine", paths=[tmp_path])
    assert "its own import of 'wbnew_not_installed' failed" in info.value.what
    assert "install 'wbnew_not_installed'" in (info.value.fix or "")


def test_search_dirs_missing_directory_config_error(tmp_path):
    with pytest.raises(ConfigError, match="is not a directory") as info:
        search_dirs([tmp_path / "nope"])
    assert info.value.where == "--strategy-path / strategy.path"


def test_search_dirs_working_directory_last_and_once(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert search_dirs([tmp_path, "."]) == [tmp_path.resolve()]
    assert search_dirs([])[-1] == tmp_path.resolve()


def test_load_strategy_class_main_without_class_says_pass_the_class():
    with pytest.raises(ConfigError) as info:
        load_strategy_class("__main__:NotebookOnly")
    assert "known only in that session" in (info.value.fix or "")
    assert "strategy=MyStrategy" in (info.value.fix or "")


def test_load_strategy_class_locals_qualname_says_pass_the_class():
    with pytest.raises(ConfigError, match="defined inside a function"):
        load_strategy_class("workbench.strategy:f.<locals>.Mine")


def test_strategy_check_params_hook_runs_on_construction():
    class Pair(Strategy):
        lo: int = 1
        hi: int = 2

        @classmethod
        def check_params(cls, params, where="strategy.params"):
            if params["lo"] > params["hi"]:
                raise ConfigError("lo above hi", where=f"{where}.lo/hi")

    assert Pair(lo=2, hi=2).lo == 2
    with pytest.raises(ConfigError, match="lo above hi"):
        Pair(lo=3)
