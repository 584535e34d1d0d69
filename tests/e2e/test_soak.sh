#!/usr/bin/env bash
# The chaos soak (tests/soak/soak.sh), bounded for CI: 3 minutes of operations with faults
# (SOAK_MINUTES and SOAK_SEED are honoured; `make soak` runs the long version).
SOAK_MINUTES=${SOAK_MINUTES:-3} exec bash "$(dirname "$0")/../soak/soak.sh"
