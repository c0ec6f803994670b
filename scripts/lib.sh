# shellcheck shell=bash
# Shell helpers shared by the scripts (sourced, never run on its own).

# start_sidecar BIN_DIR RUNTIME_DIR ID [ARGS...]: starts the example sidecar
# as ID and waits, reading its stdout (never sleeping), until it says ready.
# Its pid is left in $sidecar_pid; it keeps running in the background.
start_sidecar() {
    local bin_dir=$1 runtime_dir=$2 id=$3
    shift 3
    local fd line
    exec {fd}< <("$bin_dir/firma-example-sidecar" --runtime-dir "$runtime_dir" --id "$id" "$@" & echo "pid $!"; wait)
    sidecar_pid=
    while read -r -u "$fd" line; do
        case $line in
            "pid "*) sidecar_pid=${line#pid } ;;
            ready*) break ;;
        esac
    done
}
