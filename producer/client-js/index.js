'use strict';
// br2k-client: sign BR2K requests and submit them through the service's
// HTTP gateways, found in its registry contract (README.md).
const { canonical, serialize, encode, requestId } = require('./src/canonical');
const { signRequest, recoverSigner } = require('./src/sign');
const { discoverGateways, parseGatewayList, REGISTRY_ABI } = require('./src/registry');
const { Client, Br2kError, backoffDelay, retryDelay, retrySchedule, parseRetryAfter } = require('./src/client');

module.exports = {
  canonical,
  serialize,
  encode,
  requestId,
  signRequest,
  recoverSigner,
  discoverGateways,
  parseGatewayList,
  REGISTRY_ABI,
  Client,
  Br2kError,
  backoffDelay,
  retryDelay,
  retrySchedule,
  parseRetryAfter,
};
