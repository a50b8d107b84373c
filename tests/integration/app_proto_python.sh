# app_proto_python.sh - app_proto.bash on the Python key-value registry (worker/apps/examples/python-kv).
BR2K_TEST_APP=python
source "$(dirname "$0")/app_proto.bash"
