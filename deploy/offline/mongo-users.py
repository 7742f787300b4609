"""The cashtag users, made at the first start of the offline mongo image (the Python twin
of deploy/mongo-init/cashtag-users.js, which the official mongo image runs):

  cashtag  readWrite on the cashtag database — every service connects as this user
  analyst  read on the cashtag database — analysts' notebooks and queries

Passwords from MONGO_APP_PASSWORD and MONGO_ANALYST_PASSWORD; the root user from
MONGO_INITDB_ROOT_USERNAME / MONGO_INITDB_ROOT_PASSWORD. Each may come from the file
NAME_FILE names instead (a Compose secret), as the official image allows.
"""
import os
import sys
import time

import pymongo


def need(name):
    file = os.environ.get(f"{name}_FILE", "")
    if file:
        with open(file, encoding="utf-8") as f:
            v = f.read().removesuffix("\n").removesuffix("\r")
    else:
        v = os.environ.get(name, "")
    if not v:
        sys.exit(f"mongo-users: {name} is not set (nor {name}_FILE)")
    return v


def main():
    client = pymongo.MongoClient("mongodb://127.0.0.1:27017/?directConnection=true", serverSelectionTimeoutMS=2000)
    deadline = time.monotonic() + 60
    while True:
        try:
            client.admin.command("ping")
            break
        except pymongo.errors.PyMongoError:
            if time.monotonic() > deadline:
                sys.exit("mongo-users: the server did not answer within 60 s")
            time.sleep(0.2)
    admin = client.admin
    db = os.environ.get("MONGO_APP_DATABASE", "cashtag")
    users = [
        (need("MONGO_INITDB_ROOT_USERNAME"), need("MONGO_INITDB_ROOT_PASSWORD"), [{"role": "root", "db": "admin"}]),
        ("cashtag", need("MONGO_APP_PASSWORD"), [{"role": "readWrite", "db": db}]),
        ("analyst", need("MONGO_ANALYST_PASSWORD"), [{"role": "read", "db": db}]),
    ]
    existing = {u["user"] for u in admin.command("usersInfo")["users"]}
    for name, pwd, roles in users:
        if name in existing:
            admin.command("updateUser", name, pwd=pwd, roles=roles)
        else:
            admin.command("createUser", name, pwd=pwd, roles=roles)
        print(f"mongo-users: user {name} ready ({', '.join(r['role'] + '@' + r['db'] for r in roles)})", file=sys.stderr)


if __name__ == "__main__":
    main()
