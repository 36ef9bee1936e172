// The Kubernetes objects on standard input (a JSON list) validated against the API's schema of their kind,
// with npm's kubernetes-models (its generated validators of the Kubernetes OpenAPI schema: types, required
// fields, enumerations, formats). Fields the schema does not name are not reported by it: test_deploy.py
// checks the fields that matter by name.
//
//   node tests/deploy/validate.mjs MODELS_DIR < objects.json
//
// MODELS_DIR holds node_modules/kubernetes-models (scripts/setup: npm install --prefix MODELS_DIR). Prints
// one line per object, "ok <kind>/<name>" or "invalid <kind>/<name>: <error>"; exit 1 when one is invalid.
import fs from "node:fs";
import path from "node:path";
import { pathToFileURL } from "node:url";

const root = path.join(process.argv[2], "node_modules", "kubernetes-models");
if (!fs.existsSync(path.join(root, "package.json"))) {
	console.error(`validate.mjs: no kubernetes-models in ${process.argv[2]} (scripts/setup installs it)`);
	process.exit(2);
}
const objects = JSON.parse(fs.readFileSync(0, "utf8"));
let failed = false;
for (const object of objects) {
	const what = `${object.kind}/${object.metadata?.name}`;
	// "apps/v1" -> apps/v1/DaemonSet.js; "v1" (the core group) -> v1/Pod.js
	const file = path.join(root, ...object.apiVersion.split("/"), `${object.kind}.js`);
	if (!fs.existsSync(file)) {
		console.log(`invalid ${what}: no kind ${object.kind} in ${object.apiVersion}`);
		failed = true;
		continue;
	}
	const model = (await import(pathToFileURL(file)))[object.kind];
	try {
		new model(object).validate();
		console.log(`ok ${what}`);
	} catch (e) {
		console.log(`invalid ${what}: ${e.message.replace(/\n/g, " ")}`);
		failed = true;
	}
}
process.exit(failed ? 1 : 0);
