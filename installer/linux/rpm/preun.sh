# Tandem .rpm %preun: $1 is 0 on removal (not upgrade): stop the agents.
if [ "$1" -eq 0 ]; then
    if [ -d /run/systemd/system ]; then
        systemctl disable --now tandem.service >/dev/null 2>&1 || :
    fi
    # Only processes running the packaged binary, by its path: a tandem-desktop run from
    # elsewhere (a developer's build) is not this package's to stop.
    for proc in /proc/[0-9]*; do
        if [ "$(readlink "$proc/exe" 2>/dev/null)" = /usr/bin/tandem-desktop ]; then
            kill -TERM "${proc#/proc/}" 2>/dev/null || :
        fi
    done
fi
