from vitrine.v1 import index_pb2 as _index_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ReplicaRole(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    REPLICA_ROLE_UNSPECIFIED: _ClassVar[ReplicaRole]
    REPLICA_ROLE_PRIMARY: _ClassVar[ReplicaRole]
    REPLICA_ROLE_FOLLOWER: _ClassVar[ReplicaRole]
REPLICA_ROLE_UNSPECIFIED: ReplicaRole
REPLICA_ROLE_PRIMARY: ReplicaRole
REPLICA_ROLE_FOLLOWER: ReplicaRole

class CollectionProgress(_message.Message):
    __slots__ = ("name", "applied_seq", "applied_term", "in_sync")
    NAME_FIELD_NUMBER: _ClassVar[int]
    APPLIED_SEQ_FIELD_NUMBER: _ClassVar[int]
    APPLIED_TERM_FIELD_NUMBER: _ClassVar[int]
    IN_SYNC_FIELD_NUMBER: _ClassVar[int]
    name: str
    applied_seq: int
    applied_term: int
    in_sync: bool
    def __init__(self, name: _Optional[str] = ..., applied_seq: _Optional[int] = ..., applied_term: _Optional[int] = ..., in_sync: _Optional[bool] = ...) -> None: ...

class GetReplicaStatusRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetReplicaStatusResponse(_message.Message):
    __slots__ = ("group", "member", "role", "term", "primary_address", "collections", "replicas")
    GROUP_FIELD_NUMBER: _ClassVar[int]
    MEMBER_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    TERM_FIELD_NUMBER: _ClassVar[int]
    PRIMARY_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    COLLECTIONS_FIELD_NUMBER: _ClassVar[int]
    REPLICAS_FIELD_NUMBER: _ClassVar[int]
    group: str
    member: str
    role: ReplicaRole
    term: int
    primary_address: str
    collections: _containers.RepeatedCompositeFieldContainer[CollectionProgress]
    replicas: int
    def __init__(self, group: _Optional[str] = ..., member: _Optional[str] = ..., role: _Optional[_Union[ReplicaRole, str]] = ..., term: _Optional[int] = ..., primary_address: _Optional[str] = ..., collections: _Optional[_Iterable[_Union[CollectionProgress, _Mapping]]] = ..., replicas: _Optional[int] = ...) -> None: ...

class LogEntry(_message.Message):
    __slots__ = ("seq", "op", "body")
    SEQ_FIELD_NUMBER: _ClassVar[int]
    OP_FIELD_NUMBER: _ClassVar[int]
    BODY_FIELD_NUMBER: _ClassVar[int]
    seq: int
    op: int
    body: bytes
    def __init__(self, seq: _Optional[int] = ..., op: _Optional[int] = ..., body: _Optional[bytes] = ...) -> None: ...

class Epoch(_message.Message):
    __slots__ = ("term", "start_seq")
    TERM_FIELD_NUMBER: _ClassVar[int]
    START_SEQ_FIELD_NUMBER: _ClassVar[int]
    term: int
    start_seq: int
    def __init__(self, term: _Optional[int] = ..., start_seq: _Optional[int] = ...) -> None: ...

class FetchRequest(_message.Message):
    __slots__ = ("collection", "after_seq", "after_term", "term", "member", "wait_ms", "max_bytes")
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    AFTER_SEQ_FIELD_NUMBER: _ClassVar[int]
    AFTER_TERM_FIELD_NUMBER: _ClassVar[int]
    TERM_FIELD_NUMBER: _ClassVar[int]
    MEMBER_FIELD_NUMBER: _ClassVar[int]
    WAIT_MS_FIELD_NUMBER: _ClassVar[int]
    MAX_BYTES_FIELD_NUMBER: _ClassVar[int]
    collection: str
    after_seq: int
    after_term: int
    term: int
    member: str
    wait_ms: int
    max_bytes: int
    def __init__(self, collection: _Optional[str] = ..., after_seq: _Optional[int] = ..., after_term: _Optional[int] = ..., term: _Optional[int] = ..., member: _Optional[str] = ..., wait_ms: _Optional[int] = ..., max_bytes: _Optional[int] = ...) -> None: ...

class FetchResponse(_message.Message):
    __slots__ = ("term", "last_seq", "entries", "snapshot_required", "epochs")
    TERM_FIELD_NUMBER: _ClassVar[int]
    LAST_SEQ_FIELD_NUMBER: _ClassVar[int]
    ENTRIES_FIELD_NUMBER: _ClassVar[int]
    SNAPSHOT_REQUIRED_FIELD_NUMBER: _ClassVar[int]
    EPOCHS_FIELD_NUMBER: _ClassVar[int]
    term: int
    last_seq: int
    entries: _containers.RepeatedCompositeFieldContainer[LogEntry]
    snapshot_required: bool
    epochs: _containers.RepeatedCompositeFieldContainer[Epoch]
    def __init__(self, term: _Optional[int] = ..., last_seq: _Optional[int] = ..., entries: _Optional[_Iterable[_Union[LogEntry, _Mapping]]] = ..., snapshot_required: _Optional[bool] = ..., epochs: _Optional[_Iterable[_Union[Epoch, _Mapping]]] = ...) -> None: ...

class DumpRequest(_message.Message):
    __slots__ = ("collection", "batch")
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    BATCH_FIELD_NUMBER: _ClassVar[int]
    collection: str
    batch: int
    def __init__(self, collection: _Optional[str] = ..., batch: _Optional[int] = ...) -> None: ...

class DumpResponse(_message.Message):
    __slots__ = ("collection", "seq", "records", "epochs")
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    SEQ_FIELD_NUMBER: _ClassVar[int]
    RECORDS_FIELD_NUMBER: _ClassVar[int]
    EPOCHS_FIELD_NUMBER: _ClassVar[int]
    collection: _index_pb2.CollectionInfo
    seq: int
    records: _containers.RepeatedCompositeFieldContainer[_index_pb2.Record]
    epochs: _containers.RepeatedCompositeFieldContainer[Epoch]
    def __init__(self, collection: _Optional[_Union[_index_pb2.CollectionInfo, _Mapping]] = ..., seq: _Optional[int] = ..., records: _Optional[_Iterable[_Union[_index_pb2.Record, _Mapping]]] = ..., epochs: _Optional[_Iterable[_Union[Epoch, _Mapping]]] = ...) -> None: ...
