"""Django-style management commands for the example shop: `migrate`, and `makemigrations
--check --dry-run`, which davit's gate runs to catch model changes without a migration.

davit runs it as a pre-deploy hook in a one-off container of the new image, before any traffic
moves; a failing migration stops the deploy with the old release still serving.
"""

import os
import sys


def migrate():
    if not os.environ.get("DATABASE_URL"):
        print("migrate: DATABASE_URL is not set (davit passes app.secret_env through a 0600 env file)", file=sys.stderr)
        return 1
    print(f"migrate: schema is up to date for {os.environ.get('DAVIT_VERSION', 'dev')}")
    return 0


def makemigrations_check():
    # The example has no models; a real Django project exits 1 here when a migration is missing.
    print("No changes detected")
    return 0


if __name__ == "__main__":
    args = sys.argv[1:]
    if args == ["migrate"]:
        sys.exit(migrate())
    if args[:1] == ["makemigrations"] and "--check" in args:
        sys.exit(makemigrations_check())
    print("usage: manage.py migrate | makemigrations --check --dry-run", file=sys.stderr)
    sys.exit(2)
