# app_proto_node.sh - app_proto.bash on the Node token ledger (worker/apps/examples/node-ledger).
BR2K_TEST_APP=node
source "$(dirname "$0")/app_proto.bash"
