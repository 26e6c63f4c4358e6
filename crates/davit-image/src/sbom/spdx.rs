//! SPDX 2.3 JSON, for consumers that want SPDX; same inventory, fewer details than CycloneDX.

use super::Inventory;
use serde_json::{Value, json};

/// Render the inventory as an SPDX 2.3 document. `namespace_id` makes `documentNamespace`
/// unique per document, as the spec requires.
pub fn render(inv: &Inventory, image: &str, created: &str, namespace_id: &str) -> Value {
    let root = "SPDXRef-Image";
    let mut packages = vec![json!({
        "SPDXID": root,
        "name": image,
        "versionInfo": inv.image_id,
        "downloadLocation": "NOASSERTION",
        "filesAnalyzed": false,
        "primaryPackagePurpose": "CONTAINER",
    })];
    let mut rels = vec![json!({
        "spdxElementId": "SPDXRef-DOCUMENT",
        "relationshipType": "DESCRIBES",
        "relatedSpdxElement": root,
    })];
    for (i, c) in inv.components.iter().enumerate() {
        let id = format!("SPDXRef-Package-{}", i + 1);
        packages.push(json!({
            "SPDXID": id,
            "name": c.name,
            "versionInfo": c.version,
            "downloadLocation": "NOASSERTION",
            "filesAnalyzed": false,
            // Package metadata holds free text, not SPDX expressions: keep it as a comment.
            "licenseDeclared": "NOASSERTION",
            "licenseComments": c.licenses.join("; "),
            "comment": format!("layer {} ({})", c.layer_index.map(|x| x.to_string()).unwrap_or_default(), c.layer.clone().unwrap_or_default()),
            "externalRefs": [{
                "referenceCategory": "PACKAGE-MANAGER",
                "referenceType": "purl",
                "referenceLocator": c.purl,
            }],
        }));
        rels.push(json!({
            "spdxElementId": root,
            "relationshipType": "CONTAINS",
            "relatedSpdxElement": id,
        }));
    }
    json!({
        "spdxVersion": "SPDX-2.3",
        "dataLicense": "CC0-1.0",
        "SPDXID": "SPDXRef-DOCUMENT",
        "name": image,
        "documentNamespace": format!("https://davit.invalid/spdx/{namespace_id}"),
        "creationInfo": {
            "created": created,
            "creators": [format!("Tool: davit-image-{}", env!("CARGO_PKG_VERSION"))],
        },
        "packages": packages,
        "relationships": rels,
    })
}
