//! CycloneDX 1.5 JSON, the SBOM format GitHub's dependency submission and most scanners read.
//!
//! Written with plain serde values rather than the `cyclonedx-bom` crate: the document is
//! small, the fields are fixed, and the shape is checked by a test against the 1.5 schema's
//! required fields. Each component carries its layer as a `davit:layer:*` property, the layer
//! attribution a purl cannot express.

use super::Inventory;
use serde_json::{Value, json};

/// A random (v4) UUID URN for `serialNumber`.
pub fn urn_uuid() -> String {
    let mut b: [u8; 16] = rand::random();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "urn:uuid:{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// Render the inventory of `image` (a name for humans) as CycloneDX 1.5 JSON.
pub fn render(inv: &Inventory, image: &str, timestamp: &str, serial: &str) -> Value {
    let mut refs = std::collections::BTreeSet::new();
    let components: Vec<Value> = inv
        .components
        .iter()
        .map(|c| {
            let mut bom_ref = c.purl.clone();
            let mut n = 1;
            while !refs.insert(bom_ref.clone()) {
                n += 1;
                bom_ref = format!("{}#{n}", c.purl);
            }
            let mut props =
                vec![json!({"name": "davit:package:type", "value": c.kind.purl_type()})];
            if let Some(l) = &c.layer {
                props.push(json!({"name": "davit:layer:diff_id", "value": l}));
            }
            if let Some(i) = c.layer_index {
                props.push(json!({"name": "davit:layer:index", "value": i.to_string()}));
            }
            props.push(json!({"name": "davit:location:path", "value": c.path}));
            if let Some(s) = &c.source_name {
                props.push(json!({"name": "davit:package:source_name", "value": s}));
            }
            if let Some(s) = &c.source_version {
                props.push(json!({"name": "davit:package:source_version", "value": s}));
            }
            let mut o = json!({
                "type": "library",
                "bom-ref": bom_ref,
                "name": c.name,
                "version": c.version,
                "purl": c.purl,
                "properties": props,
            });
            if !c.licenses.is_empty() {
                o["licenses"] = c
                    .licenses
                    .iter()
                    .map(|l| json!({"license": {"name": l}}))
                    .collect();
            }
            o
        })
        .collect();
    let mut top = vec![];
    if let Some(d) = &inv.distro {
        top.push(json!({
            "type": "operating-system",
            "bom-ref": format!("os:{}@{}", d.id, d.version_id.clone().unwrap_or_default()),
            "name": d.id,
            "version": d.version_id.clone().unwrap_or_default(),
            "description": d.pretty_name.clone().unwrap_or_default(),
        }));
    }
    json!({
        "$schema": "http://cyclonedx.org/schema/bom-1.5.schema.json",
        "bomFormat": "CycloneDX",
        "specVersion": "1.5",
        "serialNumber": serial,
        "version": 1,
        "metadata": {
            "timestamp": timestamp,
            "tools": {"components": [{
                "type": "application",
                "name": "davit-image",
                "version": env!("CARGO_PKG_VERSION"),
            }]},
            "component": {
                "type": "container",
                "bom-ref": inv.image_id,
                "name": image,
                "version": inv.image_id,
                "properties": inv.layers.iter().enumerate().map(|(i, l)| json!({"name": format!("davit:layer:{i}"), "value": l})).collect::<Vec<_>>(),
            },
        },
        "components": top.into_iter().chain(components).collect::<Vec<_>>(),
    })
}
