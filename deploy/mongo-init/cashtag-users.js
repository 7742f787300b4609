// The cashtag users, made by the official mongo image at its first start (it runs the
// scripts of /docker-entrypoint-initdb.d after creating MONGO_INITDB_ROOT_USERNAME):
//   cashtag  readWrite on the cashtag database — every service connects as this user
//   analyst  read on the cashtag database — analysts' notebooks and queries
// deploy/offline/mongo-users.py does the same for the offline image.
// Each password from the file NAME_FILE names (a Compose secret), else from NAME.
const dbName = process.env.MONGO_APP_DATABASE || "cashtag";
const need = (name) => {
  const file = process.env[`${name}_FILE`];
  const v = file ? require("fs").readFileSync(file, "utf8").replace(/\r?\n$/, "") : process.env[name];
  if (!v) throw new Error(`${name} is not set (nor ${name}_FILE)`);
  return v;
};
const admin = db.getSiblingDB("admin");
admin.createUser({ user: "cashtag", pwd: need("MONGO_APP_PASSWORD"), roles: [{ role: "readWrite", db: dbName }] });
admin.createUser({ user: "analyst", pwd: need("MONGO_ANALYST_PASSWORD"), roles: [{ role: "read", db: dbName }] });
print(`cashtag-users: users cashtag (readWrite@${dbName}) and analyst (read@${dbName}) created`);
