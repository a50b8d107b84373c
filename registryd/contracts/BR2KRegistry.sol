// SPDX-License-Identifier: UNLICENSED
pragma solidity ^0.8.24;

/// @title BR2K service registry
/// @notice The paper's "service recovery center" for one BR2K service: it
/// tells clients how to reach the service (access information, leader
/// record) and keeps the history of state backups (state version, snapshot
/// digest, block) with each encrypted state-backup-log emitted as an event.
/// @dev One deployment per service. Writes are limited to the owner and to
/// writers the owner authorizes (registryd's key); reads are open to anyone.
///
/// State versions (SV). Version 1 is the service's initial, empty state: it
/// exists from deployment, has no snapshot (digest zero) and its block is the
/// deployment block. Every backup raises SV by exactly 1, so the first
/// appendBackupLog carries version 2. The version a backup carries is the
/// version of the state its snapshot holds, i.e. SV after the backup (the
/// value backupd sets SV to in Redis at step 7 of state-version-up).
/// A zero digest therefore means "nothing to fetch: start from empty".
///
/// The leader record follows invariant I2: an epoch is the Redis fencing
/// token of the leader that wrote it, and only a strictly newer epoch may
/// replace the stored one.
contract BR2KRegistry {
    /// @notice The caller is not the owner.
    error NotOwner(address caller);
    /// @notice The caller is neither the owner nor an authorized writer.
    error NotWriter(address caller);
    /// @notice A zero address was given where an account is needed.
    error ZeroAddress();
    /// @notice setAccessInfo was given an empty bootstrap list or topic.
    error EmptyAccessInfo();
    /// @notice setLeader was given an empty worker id.
    error EmptyWorkerId();
    /// @notice setLeader was given an epoch that is not newer than the stored one.
    error StaleEpoch(uint64 given, uint64 current);
    /// @notice appendBackupLog was given a version other than SV + 1.
    error BadVersion(uint64 given, uint64 expected);
    /// @notice appendBackupLog was given a zero snapshot digest.
    error EmptyDigest();
    /// @notice appendBackupLog was given an empty encrypted log.
    error EmptyLog();
    /// @notice backupByVersion was asked for a version that does not exist (0 or above SV).
    error UnknownVersion(uint64 version);
    /// @notice pruneArchives was given a version that is not above the pruned one, or not below SV.
    error BadPrune(uint64 given, uint64 prunedThrough, uint64 stateVersion);

    /// @notice Ownership moved from previousOwner to newOwner.
    event OwnershipTransferred(address indexed previousOwner, address indexed newOwner);
    /// @notice account may now write.
    event WriterAdded(address indexed account);
    /// @notice account may no longer write.
    event WriterRemoved(address indexed account);
    /// @notice The access information changed.
    event AccessInfoChanged(string bootstrapServers, string topic, string results);
    /// @notice A new leader record was stored.
    event LeaderChanged(uint64 indexed epoch, string workerId, string endpoint);
    /// @notice A state backup was recorded; encryptedLog is the state-backup-log,
    /// encrypted to the service's public key. It lives only in this event.
    event BackupLogged(uint64 indexed version, bytes32 snapshotDigest, bytes encryptedLog);
    /// @notice The history archive of a backup (the records from the previous
    /// cut + 1 to this one, sealed): emitted with BackupLogged by
    /// appendBackupLogWithArchive, in the same transaction. BackupLogged is
    /// unchanged, so readers of it read old and new backups alike.
    event HistoryArchived(uint64 indexed version, bytes32 snapshotDigest, bytes32 archiveDigest);
    /// @notice An operator pruned the history archives of versions 2 .. throughVersion
    /// from off-chain storage (br2k-backupd --archive-keep): history before
    /// throughVersion + 1 can no longer be replayed, and this says so.
    event ArchivesPruned(uint64 indexed throughVersion, uint64 stateVersion);

    struct Backup {
        bytes32 snapshotDigest;
        uint64 blockNumber;
    }

    address private _owner;
    mapping(address => bool) private _writers;

    string private _bootstrapServers;
    string private _topic;
    string private _results;

    string private _leaderId;
    uint64 private _leaderEpoch;
    string private _leaderEndpoint;

    uint64 private _stateVersion;
    mapping(uint64 => Backup) private _backups;
    mapping(uint64 => bytes32) private _archives;
    uint64 private _archivesPrunedThrough;

    /// @notice The deployer becomes the owner; SV starts at 1 (the initial,
    /// empty state, recorded with a zero digest at the deployment block).
    constructor() {
        _owner = msg.sender;
        _stateVersion = 1;
        _backups[1] = Backup({snapshotDigest: bytes32(0), blockNumber: uint64(block.number)});
        emit OwnershipTransferred(address(0), msg.sender);
    }

    modifier onlyOwner() {
        if (msg.sender != _owner) revert NotOwner(msg.sender);
        _;
    }

    modifier onlyWriter() {
        if (msg.sender != _owner && !_writers[msg.sender]) revert NotWriter(msg.sender);
        _;
    }

    // ------------------------------------------------------------------
    // Ownership and writers
    // ------------------------------------------------------------------

    /// @notice The owner: manages writers and is always a writer itself.
    function owner() external view returns (address) {
        return _owner;
    }

    /// @notice Hand ownership to newOwner (owner only). Writers are kept.
    /// @dev Single step: check newOwner twice, a wrong address cannot be undone.
    function transferOwnership(address newOwner) external onlyOwner {
        if (newOwner == address(0)) revert ZeroAddress();
        emit OwnershipTransferred(_owner, newOwner);
        _owner = newOwner;
    }

    /// @notice Authorize account to write (owner only). Adding a writer twice
    /// is accepted and emits WriterAdded only the first time.
    function addWriter(address account) external onlyOwner {
        if (account == address(0)) revert ZeroAddress();
        if (!_writers[account]) {
            _writers[account] = true;
            emit WriterAdded(account);
        }
    }

    /// @notice Withdraw account's authorization (owner only). Removing a
    /// non-writer is accepted and emits nothing. The owner stays authorized.
    function removeWriter(address account) external onlyOwner {
        if (_writers[account]) {
            _writers[account] = false;
            emit WriterRemoved(account);
        }
    }

    /// @notice Whether account may call the write functions (owner or writer).
    function isWriter(address account) external view returns (bool) {
        return account == _owner || _writers[account];
    }

    // ------------------------------------------------------------------
    // Access information
    // ------------------------------------------------------------------

    /// @notice Publish how clients reach the service (writer only). Never a secret.
    /// @param bootstrapServers Kafka bootstrap servers, comma-separated "host:port" list.
    /// @param topic The service's request topic.
    /// @param results Where clients read results (for example "redis://host:port"); may be empty.
    function setAccessInfo(string calldata bootstrapServers, string calldata topic, string calldata results)
        external
        onlyWriter
    {
        if (bytes(bootstrapServers).length == 0 || bytes(topic).length == 0) revert EmptyAccessInfo();
        _bootstrapServers = bootstrapServers;
        _topic = topic;
        _results = results;
        emit AccessInfoChanged(bootstrapServers, topic, results);
    }

    /// @notice The access information; all empty until the first setAccessInfo.
    function accessInfo()
        external
        view
        returns (string memory bootstrapServers, string memory topic, string memory results)
    {
        return (_bootstrapServers, _topic, _results);
    }

    // ------------------------------------------------------------------
    // Leader record
    // ------------------------------------------------------------------

    /// @notice Record the current leader (writer only); epoch must be greater
    /// than the stored epoch (which is 0 before the first record).
    /// @param workerId The leader worker's id; not empty.
    /// @param epoch The leader's fencing token.
    /// @param endpoint Where the leader can be reached, if anywhere; may be empty.
    function setLeader(string calldata workerId, uint64 epoch, string calldata endpoint) external onlyWriter {
        if (bytes(workerId).length == 0) revert EmptyWorkerId();
        if (epoch <= _leaderEpoch) revert StaleEpoch(epoch, _leaderEpoch);
        _leaderId = workerId;
        _leaderEpoch = epoch;
        _leaderEndpoint = endpoint;
        emit LeaderChanged(epoch, workerId, endpoint);
    }

    /// @notice The leader record; ("", 0, "") until the first setLeader.
    function leader() external view returns (string memory workerId, uint64 epoch, string memory endpoint) {
        return (_leaderId, _leaderEpoch, _leaderEndpoint);
    }

    // ------------------------------------------------------------------
    // Gateways
    // ------------------------------------------------------------------

    /// @notice The gateway URLs changed.
    event GatewaysChanged(string gateways);

    string private _gateways;

    /// @notice Publish where end users reach the service over HTTP (writer
    /// only): the URLs of its gateways (br2k-gateway), comma-separated, for
    /// example "https://gw1.example.org,https://gw2.example.org"; empty: none.
    /// Never a secret.
    function setGateways(string calldata urls) external onlyWriter {
        _gateways = urls;
        emit GatewaysChanged(urls);
    }

    /// @notice The gateway URLs, comma-separated; "" until the first setGateways.
    function gateways() external view returns (string memory) {
        return _gateways;
    }

    // ------------------------------------------------------------------
    // Backup history
    // ------------------------------------------------------------------

    /// @notice Record a state backup (writer only): version must be SV + 1.
    /// Stores the digest and the block number, raises SV to version, and
    /// emits the encrypted log in BackupLogged (not kept in storage).
    /// @param version The new state version (SV + 1; the first backup is 2).
    /// @param snapshotDigest SHA-256 of the stored (encrypted) snapshot; not zero.
    /// @param encryptedLog The state-backup-log encrypted to the service's public key; not empty.
    function appendBackupLog(uint64 version, bytes32 snapshotDigest, bytes calldata encryptedLog)
        external
        onlyWriter
    {
        _append(version, snapshotDigest, encryptedLog);
    }

    /// @notice appendBackupLog with the digest of the version's history
    /// archive (SHA-256 of the sealed archive object), stored beside the
    /// snapshot digest and emitted in HistoryArchived after BackupLogged.
    /// @param archiveDigest SHA-256 of the stored (encrypted) archive; not zero.
    function appendBackupLogWithArchive(
        uint64 version,
        bytes32 snapshotDigest,
        bytes32 archiveDigest,
        bytes calldata encryptedLog
    ) external onlyWriter {
        if (archiveDigest == bytes32(0)) revert EmptyDigest();
        _append(version, snapshotDigest, encryptedLog);
        _archives[version] = archiveDigest;
        emit HistoryArchived(version, snapshotDigest, archiveDigest);
    }

    function _append(uint64 version, bytes32 snapshotDigest, bytes calldata encryptedLog) private {
        uint64 expected = _stateVersion + 1;
        if (version != expected) revert BadVersion(version, expected);
        if (snapshotDigest == bytes32(0)) revert EmptyDigest();
        if (encryptedLog.length == 0) revert EmptyLog();
        _backups[version] = Backup({snapshotDigest: snapshotDigest, blockNumber: uint64(block.number)});
        _stateVersion = version;
        emit BackupLogged(version, snapshotDigest, encryptedLog);
    }

    /// @notice The archive digest of a version (zero: none, as for version 1
    /// and backups logged with appendBackupLog), and the highest version whose
    /// archives were pruned (0: none). Reverts UnknownVersion like backupByVersion.
    function archiveByVersion(uint64 version) external view returns (bytes32 archiveDigest, uint64 prunedThrough) {
        if (version == 0 || version > _stateVersion) revert UnknownVersion(version);
        return (_archives[version], _archivesPrunedThrough);
    }

    /// @notice Record that the archives of versions up to throughVersion were
    /// pruned (writer only): throughVersion must be above the last pruned
    /// version and below SV (the latest archive is never pruned).
    function pruneArchives(uint64 throughVersion) external onlyWriter {
        if (throughVersion <= _archivesPrunedThrough || throughVersion >= _stateVersion) {
            revert BadPrune(throughVersion, _archivesPrunedThrough, _stateVersion);
        }
        _archivesPrunedThrough = throughVersion;
        emit ArchivesPruned(throughVersion, _stateVersion);
    }

    /// @notice SV: the version of the service's latest state (1 before any backup).
    function stateVersion() external view returns (uint64) {
        return _stateVersion;
    }

    /// @notice The latest backup: (SV, its digest, the block that recorded it).
    /// Before any backup: (1, 0, deployment block).
    function latestBackup() external view returns (uint64 version, bytes32 snapshotDigest, uint64 blockNumber) {
        Backup storage b = _backups[_stateVersion];
        return (_stateVersion, b.snapshotDigest, b.blockNumber);
    }

    /// @notice The backup of a given version, 1 <= version <= SV; reverts
    /// UnknownVersion otherwise. The encrypted log is in the BackupLogged
    /// event of blockNumber with topic1 == version.
    function backupByVersion(uint64 version)
        external
        view
        returns (uint64, bytes32 snapshotDigest, uint64 blockNumber)
    {
        if (version == 0 || version > _stateVersion) revert UnknownVersion(version);
        Backup storage b = _backups[version];
        return (version, b.snapshotDigest, b.blockNumber);
    }
}
