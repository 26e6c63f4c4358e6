"""Django-style management commands for the example shop: `python3 manage.py migrate`.

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


if __name__ == "__main__":
    if sys.argv[1:] == ["migrate"]:
        sys.exit(migrate())
    print("usage: manage.py migrate", file=sys.stderr)
    sys.exit(2)
