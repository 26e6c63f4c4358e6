#!/bin/sh
# Client keep-alive across a blue-green switch on nginx: the reload switch davit ships against a
# switch that does not reload (the upstream is chosen per request from a flag file's existence).
#
# Two demo app processes (blue, green) behind one nginx; wrk holds keep-alive connections to
# nginx at full speed while the live color is switched SWITCHES times, one every INTERVAL seconds.
# Each variant runs in its own temporary folder and ports; everything is stopped at the end.
#
#   scripts/bench-keepalive-switch.sh [SWITCHES] [INTERVAL] [CONNECTIONS]
#
# Needs nginx, wrk and the static demo app (built by davit-bench or `davit demo`:
# target/demo-static/*/release/davit-demo-app, or DEMO_APP=path).
set -eu
SWITCHES=${1:-40}
INTERVAL=${2:-0.5}
CONNS=${3:-8}
root=$(cd "$(dirname "$0")/.." && pwd)
app=${DEMO_APP:-$(ls "$root"/target/demo-static/*/release/davit-demo-app 2>/dev/null | head -n1)}
[ -x "$app" ] || { echo "no demo app binary: cargo run --release -p davit-bench builds it, or set DEMO_APP" >&2; exit 2; }
command -v wrk >/dev/null || { echo "wrk is needed (apt-get install wrk)" >&2; exit 2; }
NGINX=${NGINX:-nginx}

port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

run() { # variant keepalive_secs
  variant=$1 keepalive=$2
  dir=$(mktemp -d /tmp/davit-ka-XXXXXX)
  # nginx's workers (an unprivileged user) stat the flag file: the folder must be searchable.
  chmod 755 "$dir"
  mkdir -p "$dir/tmp"
  pub=$(port) blue=$(port) green=$(port)
  PORT=$blue APP_VERSION=blue "$app" >"$dir/blue.log" 2>&1 & bpid=$!
  PORT=$green APP_VERSION=green "$app" >"$dir/green.log" 2>&1 & gpid=$!
  cat >"$dir/nginx.conf" <<CONF
worker_processes 1;
pid $dir/nginx.pid;
error_log $dir/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path $dir/tmp;
    proxy_temp_path $dir/tmp;
    upstream davit_blue { server 127.0.0.1:$blue max_fails=0; keepalive 32; }
    upstream davit_green { server 127.0.0.1:$green max_fails=0; keepalive 32; }
    include $dir/site.conf;
}
CONF
  site() { # color
    if [ "$variant" = flag ]; then
      # Per request: green while the flag file exists, blue otherwise. No reload to switch.
      cat <<SITE
server {
    listen 127.0.0.1:$pub;
    keepalive_timeout ${keepalive}s;
    keepalive_requests 1000000;
    set \$davit_color blue;
    if (-f $dir/live-green) { set \$davit_color green; }
    location / {
        proxy_pass http://davit_\$davit_color;
        proxy_http_version 1.1;
        proxy_set_header Connection "";
        add_header X-Davit-Color \$davit_color always;
    }
}
SITE
    else
      cat <<SITE
server {
    listen 127.0.0.1:$pub;
    keepalive_timeout ${keepalive}s;
    keepalive_requests 1000000;
    location / {
        proxy_pass http://davit_$1;
        proxy_http_version 1.1;
        proxy_set_header Connection "";
        add_header X-Davit-Color $1 always;
    }
}
SITE
    fi
  }
  site blue >"$dir/site.conf"
  "$NGINX" -p "$dir" -c "$dir/nginx.conf" -e "$dir/error.log"
  for p in $blue $green $pub; do
    i=0; until curl -fsS -o /dev/null "http://127.0.0.1:$p/health" 2>/dev/null || curl -fsS -o /dev/null "http://127.0.0.1:$p/" 2>/dev/null; do
      i=$((i+1)); [ $i -lt 100 ] || { echo "port $p never answered" >&2; exit 3; }; sleep 0.1; done
  done
  secs=$(python3 -c "print(int($SWITCHES*$INTERVAL+3))")
  wrk -t2 -c"$CONNS" -d"${secs}s" --latency "http://127.0.0.1:$pub/" >"$dir/wrk.txt" 2>&1 & wpid=$!
  sleep 1
  color=blue n=0 wrong=0
  while [ $n -lt "$SWITCHES" ]; do
    if [ $color = blue ]; then color=green; else color=blue; fi
    if [ "$variant" = flag ]; then
      if [ $color = green ]; then : >"$dir/live-green.new" && mv "$dir/live-green.new" "$dir/live-green"; else rm -f "$dir/live-green"; fi
    else
      site $color >"$dir/site.conf.new" && mv "$dir/site.conf.new" "$dir/site.conf"
      "$NGINX" -p "$dir" -c "$dir/nginx.conf" -e "$dir/error.log" -s reload
    fi
    # The switch took: a fresh request is answered by the new color.
    got=$(curl -s -D - -o /dev/null "http://127.0.0.1:$pub/" | tr -d '\r' | awk -F': ' 'tolower($1)=="x-app-version" {print $2}')
    [ "$got" = "$color" ] || wrong=$((wrong+1))
    n=$((n+1)); sleep "$INTERVAL"
  done
  wait $wpid || true
  kill -QUIT "$(cat "$dir/nginx.pid")" 2>/dev/null || true
  kill $bpid $gpid 2>/dev/null || true
  wait $bpid $gpid 2>/dev/null || true
  reqs=$(awk '/requests in/ {print $1}' "$dir/wrk.txt")
  errs=$(awk '/Socket errors/ {print}' "$dir/wrk.txt")
  non2xx=$(awk '/Non-2xx/ {print $NF}' "$dir/wrk.txt")
  lat=$(awk '/^ +50%/ {p50=$2} /^ +99%/ {p99=$2} END {print p50" / "p99}' "$dir/wrk.txt")
  echo "| $variant | ${keepalive}s | $SWITCHES | $wrong | ${reqs:-?} | ${non2xx:-0} | ${errs:-none} | $lat |"
  rm -rf "$dir"
}

echo "| switch | keepalive_timeout | switches | switches not seen by the next request | requests | non-2xx | socket errors | p50 / p99 |"
echo "|---|---|---:|---:|---:|---:|---|---:|"
run reload 75
run reload 0
run flag 75
