"""Edge inputs of the database toolkit: secrets in connection strings, a role named PUBLIC,
ALTER ROLE ALL settings, unusable state files and option values."""

from __future__ import annotations

import subprocess
import sys

import pytest

from swapbot.database import _common, inventory, searchpath
from swapbot.sandbox import scenarios


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://u:hunter2@127.0.0.1:1/x",
        "postgresql://u@127.0.0.1:1/x?password=hunter2",
        "host=127.0.0.1 port=1 user=postgres password=hunter2 dbname=x",
        "host=127.0.0.1 port=1 password = 'hunter2' dbname=x",
    ],
)
def test_connection_errors_never_show_the_password(url):
    with pytest.raises(_common.UserError) as info:
        _common.connect(url)
    message = str(info.value)
    assert "hunter2" not in message
    assert "Connection refused" in message


def test_a_role_named_public_is_refused_rather_than_granted_to_everyone(db_url, db, db_name):
    scenarios.load(db_url, scenarios.get("small"))
    role = f"{db_name}_x"
    # Roles are cluster-wide: make one named after the test database, then rename it "Public"
    # (the check is case-insensitive, as the keyword is).
    db.execute(f'CREATE ROLE "{role}"')
    db.execute(f'ALTER ROLE "{role}" RENAME TO "Public"')
    try:
        with pytest.raises(_common.UserError, match="role named PUBLIC"):
            inventory.inventory(db, "salesforce", ["account"])
    finally:
        db.execute('DROP ROLE "Public"')


def test_alter_role_all_is_not_taken_for_the_database_level(db_url, db, db_name):
    scenarios.load(db_url, scenarios.get("small"))
    # ALTER ROLE ALL SET is cluster-wide: set PostgreSQL's own default, and always reset it.
    db.execute("""ALTER ROLE ALL SET search_path = "$user", public""")
    try:
        levels = searchpath.read_settings(db, [])
    finally:
        db.execute("ALTER ROLE ALL RESET search_path")
    assert [s.level for s in levels] == ["database"]
    assert levels[0].search_path is None  # the all-roles row is not this database's setting


def test_state_file_in_a_missing_directory_and_bad_option_values(db_url):
    cases = [
        (["db", "search-path", "switch", "--database-url", db_url, "--roles", "nobody", "--schema", "a",
          "--new-schema", "b", "--tables", "t", "--state-file", "/nonexistent/dir/s.json"], "state-file|no such role|does not exist"),
        (["db", "ddl", "--database-url", db_url, "--schema", "a", "--new-schema", "b", "--tables", "t",
          "--phase", "prep", "--apply", "--attempts", "0"], "1 or more"),
    ]  # fmt: skip
    import re

    for args, pattern in cases:
        out = subprocess.run(
            [sys.executable, "-m", "swapbot.cli", *args], capture_output=True, text=True, timeout=60
        )
        assert out.returncode == 2, (args, out.stderr)
        assert re.search(pattern, out.stderr), out.stderr
        assert "Traceback" not in out.stderr
