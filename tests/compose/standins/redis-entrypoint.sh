#!/bin/sh
# STAND-IN for the official redis image's entrypoint (tests/compose only; see tests/compose/standins.py):
# run redis-server as the redis user in /data, with protected mode off as the official build has it
# (the container network is the boundary).
set -e
if [ "${1#-}" != "$1" ]; then
  set -- redis-server "$@"
fi
if [ "$1" = redis-server ] && [ "$(id -u)" = 0 ]; then
  chown -R redis:redis /data
  case " $* " in
    *" --protected-mode "*) ;;
    *) set -- "$@" --protected-mode no ;;
  esac
  exec setpriv --reuid=redis --regid=redis --init-groups "$@"
fi
exec "$@"
