//! T09: secrets never appear in any process's argv while davit works over ssh.

use super::*;

/// Scan every process's argv until stopped; return the hits.
fn scan_cmdlines(
    needles: Vec<Vec<u8>>,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<(usize, Vec<String>)> {
    std::thread::spawn(move || {
        let mut rounds = 0;
        let mut hits = Vec::new();
        while !stop.load(Ordering::SeqCst) {
            rounds += 1;
            for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
                let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
                    continue;
                };
                for n in &needles {
                    if cmdline.windows(n.len()).any(|w| w == n.as_slice()) {
                        hits.push(String::from_utf8_lossy(&cmdline).replace('\0', " "));
                    }
                }
            }
        }
        (rounds, hits)
    })
}

#[tokio::test]
async fn t09_secrets_never_appear_in_any_argv() {
    let s = sshd_or_skip!("t09_secrets_never_appear_in_any_argv");
    let canary_env = format!("canary-env-{:016x}", rand::random::<u64>());
    let canary_stdin = format!("canary-stdin-{:016x}", rand::random::<u64>());
    let canary_file = format!("canary-file-{:016x}", rand::random::<u64>());
    // A slice from the middle of the private key's base64: never in argv either.
    let key_line = s.client_key.lines().nth(2).unwrap().to_string();
    let stop = Arc::new(AtomicBool::new(false));
    let scanner = scan_cmdlines(
        vec![
            canary_env.clone().into_bytes(),
            canary_stdin.clone().into_bytes(),
            canary_file.clone().into_bytes(),
            key_line.clone().into_bytes(),
        ],
        stop.clone(),
    );
    let dir = tempfile::tempdir().unwrap();
    let ssh = connect(&s).await;
    for _ in 0..5 {
        let out = ssh
            .run(
                &Cmd::new("sh")
                    .args(["-c", "sleep 0.2; read -r x; [ \"$x\" = \"$EXPECT\" ] && printf '%s' \"$CANARY\" | wc -c"])
                    .secret_env("CANARY", Secret::new(canary_env.clone()))
                    .secret_env("EXPECT", Secret::new(canary_stdin.clone()))
                    .stdin(FileBody::Secret(Secret::new(format!("{canary_stdin}\n")))),
            )
            .await
            .unwrap();
        assert_eq!(out.stdout.trim(), canary_env.len().to_string(), "{out:?}");
        let f = dir.path().join("secret.env");
        ssh.write_file(&f, canary_file.as_bytes(), 0o600)
            .await
            .unwrap();
        assert!(
            ssh.create_exclusive(
                &dir.path().join(format!("l{}", rand::random::<u32>())),
                canary_file.as_bytes()
            )
            .await
            .unwrap()
        );
        ssh.append_line(&dir.path().join("ledger"), &canary_file)
            .await
            .unwrap();
        assert_eq!(
            ssh.read_file(&f).await.unwrap().unwrap(),
            canary_file.as_bytes()
        );
    }
    drop(ssh);
    // And through a reconnect with a pin (keyscan, keygen), which also writes the key again.
    let mut cfg = s.config();
    cfg.known_hosts = None;
    cfg.fingerprint = Some(s.fingerprint());
    let ssh = Ssh::connect(cfg).await.unwrap();
    ssh.run(&Cmd::new("true").secret_env("X", Secret::new(canary_env.clone())))
        .await
        .unwrap();
    drop(ssh);
    stop.store(true, Ordering::SeqCst);
    let (rounds, hits) = scanner.join().unwrap();
    assert!(
        rounds > 10,
        "the scanner must actually have sampled ({rounds} rounds)"
    );
    assert!(hits.is_empty(), "secret bytes in argv: {hits:#?}");
    eprintln!("T09: {rounds} scans of /proc/*/cmdline, 0 hits");
}
