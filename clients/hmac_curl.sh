#!/usr/bin/env bash
# hmac_curl.sh: send one LOGOPS1-HMAC-SHA256-signed request with curl (see docs/signing.md).
#
# Needs bash, coreutils (sha256sum, od, head, base64, tr, date) and curl. The HMAC is
# computed here with sha256sum, so the secret is never on a command line that `ps` shows.
set -euo pipefail

readonly PROG=${0##*/}
readonly SCHEME=LOGOPS1-HMAC-SHA256
readonly SCOPE=logs.push
readonly MIN_SECRET_BYTES=16

usage() {
  cat <<EOF
Usage: $PROG -u URL -k KEY_ID [options] [-- CURL_OPTIONS...]

Sign a request body with LOGOPS1-HMAC-SHA256 and send it with curl.

  -u, --url URL          where to send it (e.g. http://127.0.0.1:8081/v1/logs)
  -X, --method METHOD    HTTP method (default POST)
  -k, --key KEY_ID       the key id (x-logops-key-id)
      --secret-file F    file holding the key's secret (its text without the final newline)
      --secret S         the secret itself: works, but warns (other users can see it in ps)
  -d, --data TEXT        the body, sent exactly as given
  -f, --file F           the body from a file, byte for byte (binary safe)
  -H 'Name: value'       an extra header, repeatable; Content-Type defaults to application/json
      --ts-offset SECS   shift the timestamp (e.g. -400 to see a clock_skew refusal)
      --echo-headers     print the signature headers on stderr
  -h, --help             this help
  --                     everything after it goes to curl as is

The secret comes from --secret-file, else --secret, else the LOGOPS_SECRET variable.
Test hooks only (never for real traffic): LOGOPS_SIGN_TIME fixes the clock (Unix seconds),
LOGOPS_SIGN_NONCE fixes the nonce.
Exit status: curl's, or 2 for bad options.
EOF
}

die() {
  printf '%s: %s\n' "$PROG" "$*" >&2
  exit 2
}

# Bytes given as hex on stdout. printf is a builtin: nothing here reaches a command line.
hex_to_bytes() {
  local hex=$1 esc="" i
  for ((i = 0; i < ${#hex}; i += 2)); do
    esc+="\\x${hex:i:2}"
  done
  printf '%b' "$esc"
}

# HMAC-SHA256 (RFC 2104) of stdin under a key given in hex; prints lowercase hex.
hmac_sha256() {
  local key_hex=$1 ipad="" opad="" i byte digest
  if ((${#key_hex} > 128)); then
    digest=$(hex_to_bytes "$key_hex" | sha256sum)
    key_hex=${digest%% *}
  fi
  while ((${#key_hex} < 128)); do
    key_hex+=00
  done
  for ((i = 0; i < 128; i += 2)); do
    byte=$((16#${key_hex:i:2}))
    printf -v ipad '%s\\x%02x' "$ipad" $((byte ^ 0x36))
    printf -v opad '%s\\x%02x' "$opad" $((byte ^ 0x5c))
  done
  digest=$({ printf '%b' "$ipad" && cat; } | sha256sum)
  digest=$({ printf '%b' "$opad" && hex_to_bytes "${digest%% *}"; } | sha256sum)
  printf '%s\n' "${digest%% *}"
}

# The secret as hex: from the file (without trailing CR/LF) or the variable.
secret_hex() {
  local hex
  if [[ -n $secret_file ]]; then
    [[ -r $secret_file ]] || die "cannot read secret file $secret_file"
    hex=$(od -An -v -tx1 <"$secret_file" | tr -d ' \n')
    while [[ $hex == *0a || $hex == *0d ]]; do
      hex=${hex%??}
    done
  else
    hex=$(printf '%s' "$secret" | od -An -v -tx1 | tr -d ' \n')
  fi
  [[ -n $hex ]] || die "no secret: give --secret-file F or set LOGOPS_SECRET"
  ((${#hex} >= 2 * MIN_SECRET_BYTES)) || die "the secret is shorter than $MIN_SECRET_BYTES bytes"
  printf '%s\n' "$hex"
}

body_sha256() {
  local digest
  if [[ -n $file ]]; then
    digest=$(sha256sum <"$file")
  else
    digest=$(printf '%s' "$data" | sha256sum)
  fi
  printf '%s\n' "${digest%% *}"
}

url="" method=POST key_id="" secret_file="" secret=${LOGOPS_SECRET:-} secret_arg=0
data="" file="" has_data=0 ts_offset=0 echo_headers=0 content_type=""
extra_headers=() curl_args=()

need_value() {
  (($# >= 2)) || die "$1 needs a value (see --help)"
}

parse_args() {
  while (($#)); do
    case $1 in
      -u | --url) need_value "$@"; url=$2; shift 2 ;;
      -X | --method) need_value "$@"; method=$2; shift 2 ;;
      -k | --key) need_value "$@"; key_id=$2; shift 2 ;;
      --secret-file) need_value "$@"; secret_file=$2; shift 2 ;;
      --secret) need_value "$@"; secret=$2; secret_arg=1; shift 2 ;;
      -d | --data) need_value "$@"; data=$2; has_data=1; shift 2 ;;
      -f | --file) need_value "$@"; file=$2; shift 2 ;;
      -H) need_value "$@"; extra_headers+=("$2"); shift 2 ;;
      --ts-offset) need_value "$@"; ts_offset=$2; shift 2 ;;
      --echo-headers) echo_headers=1; shift ;;
      -h | --help) usage; exit 0 ;;
      --) shift; curl_args=("$@"); return ;;
      *) die "unknown option $1 (see --help)" ;;
    esac
  done
}

check_args() {
  [[ -n $url ]] || die "-u/--url is required"
  [[ -n $key_id ]] || die "-k/--key is required"
  ((has_data == 0)) || [[ -z $file ]] || die "give -d/--data or -f/--file, not both"
  [[ -z $file || -r $file ]] || die "cannot read $file"
  [[ $ts_offset =~ ^[+-]?[0-9]+$ ]] || die "--ts-offset takes whole seconds, got $ts_offset"
  if ((secret_arg)) && [[ -z $secret_file ]]; then
    printf '%s: warning: --secret puts the secret on the command line; use --secret-file\n' \
      "$PROG" >&2
  fi
  local header
  for header in "${extra_headers[@]}"; do
    if [[ ${header,,} == content-type:* ]]; then
      content_type=${header#*:}
    fi
  done
}

# The media type as signed: lowercase, without parameters or surrounding spaces.
media_type() {
  local mt=${1%%;*}
  mt=${mt,,}
  mt=${mt#"${mt%%[![:space:]]*}"}
  printf '%s\n' "${mt%"${mt##*[![:space:]]}"}"
}

main() {
  parse_args "$@"
  check_args
  local key_hex now ts nonce digest sts signature
  key_hex=$(secret_hex)
  if [[ -z $content_type ]]; then
    content_type=application/json
    extra_headers+=("Content-Type: $content_type")
  fi
  now=${LOGOPS_SIGN_TIME:-$(date +%s)}
  ts=$((now + ts_offset))
  nonce=${LOGOPS_SIGN_NONCE:-$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n')}
  digest=$(body_sha256)
  sts=$(printf '%s\n' "$SCHEME" "$SCOPE" "$(media_type "$content_type")" "$key_id" "$ts" \
    "$nonce" "$digest")
  signature=$(printf '%s' "$sts" | hmac_sha256 "$key_hex")
  local -a signed=(
    "x-logops-key-id: $key_id"
    "x-logops-timestamp: $ts"
    "x-logops-nonce: $nonce"
    "x-logops-content-sha256: $digest"
    "x-logops-signature: v1=$signature"
  )
  if ((echo_headers)); then
    printf '%s\n' "${signed[@]}" >&2
  fi
  local -a cmd=(curl -sS -X "$method" "$url")
  local header
  for header in "${extra_headers[@]}" "${signed[@]}"; do
    cmd+=(-H "$header")
  done
  if [[ -n $file ]]; then
    "${cmd[@]}" --data-binary "@$file" "${curl_args[@]}"
  elif ((has_data)); then
    printf '%s' "$data" | "${cmd[@]}" --data-binary @- "${curl_args[@]}"
  else
    "${cmd[@]}" "${curl_args[@]}"
  fi
}

main "$@"
