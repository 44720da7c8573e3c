"""Two group requests aiokafka's admin client lacks: DescribeGroups v4 and LeaveGroup v3.

- ``DescribeGroups`` v4 (KIP-345) adds each member's ``group_instance_id``: the static
  member id an operator must see to tell a worker slot from a dynamic consumer.
- ``LeaveGroup`` v3 (KIP-345) removes members by ``group_instance_id``: what
  ``kafka-consumer-groups --delete --group G`` / ``Admin.removeMembersFromConsumerGroup``
  send. Kafka clients never send a LeaveGroup for a static member when they stop, so a
  static member that is gone for good stays in the group until ``session.timeout.ms``
  (Apache Kafka) or forever (the embedded broker, docs/broker.md gap c).

Both are non-flexible versions (v4 / v3), framed with aiokafka's own protocol types and
sent through its connection, which negotiates the version with the broker's ApiVersions.
The class names follow aiokafka's (``..._v4``); aiokafka is untyped, hence the ignores.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.coordinator.protocol import ConsumerProtocolMemberAssignment
from aiokafka.protocol.api import Request, RequestStruct, Response
from aiokafka.protocol.types import Array, Boolean, Bytes, Int16, Int32, Schema, String

#: Kafka's UNKNOWN_MEMBER_ID: LeaveGroup v3 finds the member by its instance id.
UNKNOWN_MEMBER_ID = ""


class DescribeGroupsResponse_v4(Response):  # type: ignore[misc]
    API_KEY = 15
    API_VERSION = 4
    SCHEMA = Schema(
        ("throttle_time_ms", Int32),
        (
            "groups",
            Array(
                ("error_code", Int16),
                ("group", String("utf-8")),
                ("state", String("utf-8")),
                ("protocol_type", String("utf-8")),
                ("protocol", String("utf-8")),
                (
                    "members",
                    Array(
                        ("member_id", String("utf-8")),
                        ("group_instance_id", String("utf-8")),
                        ("client_id", String("utf-8")),
                        ("client_host", String("utf-8")),
                        ("member_metadata", Bytes),
                        ("member_assignment", Bytes),
                    ),
                ),
                ("authorized_operations", Int32),
            ),
        ),
    )


class DescribeGroupsRequest_v4(RequestStruct):  # type: ignore[misc]
    API_KEY = 15
    API_VERSION = 4
    RESPONSE_TYPE = DescribeGroupsResponse_v4
    SCHEMA = Schema(("groups", Array(String("utf-8"))), ("include_authorized_operations", Boolean))


class DescribeGroupsV4(Request[DescribeGroupsRequest_v4]):  # type: ignore[misc]
    API_KEY = 15

    def __init__(self, groups: list[str]) -> None:
        self._groups = groups

    def build(
        self, request_struct_class: type[DescribeGroupsRequest_v4]
    ) -> DescribeGroupsRequest_v4:
        return request_struct_class(self._groups, False)


class LeaveGroupResponse_v3(Response):  # type: ignore[misc]
    API_KEY = 13
    API_VERSION = 3
    SCHEMA = Schema(
        ("throttle_time_ms", Int32),
        ("error_code", Int16),
        (
            "members",
            Array(
                ("member_id", String("utf-8")),
                ("group_instance_id", String("utf-8")),
                ("error_code", Int16),
            ),
        ),
    )


class LeaveGroupRequest_v3(RequestStruct):  # type: ignore[misc]
    API_KEY = 13
    API_VERSION = 3
    RESPONSE_TYPE = LeaveGroupResponse_v3
    SCHEMA = Schema(
        ("group_id", String("utf-8")),
        ("members", Array(("member_id", String("utf-8")), ("group_instance_id", String("utf-8")))),
    )


class LeaveGroupV3(Request[LeaveGroupRequest_v3]):  # type: ignore[misc]
    API_KEY = 13

    def __init__(self, group_id: str, instance_ids: list[str]) -> None:
        self._group_id = group_id
        self._instance_ids = instance_ids

    def build(self, request_struct_class: type[LeaveGroupRequest_v3]) -> LeaveGroupRequest_v3:
        members = [(UNKNOWN_MEMBER_ID, instance) for instance in self._instance_ids]
        return request_struct_class(self._group_id, members)


@dataclass(frozen=True, slots=True)
class MemberInfo:
    """One member of a group as the coordinator describes it."""

    member_id: str
    instance_id: str | None
    client_id: str
    host: str
    assignment: tuple[tuple[str, int], ...]  # (topic, partition), sorted


@dataclass(frozen=True, slots=True)
class GroupInfo:
    group_id: str
    state: str
    protocol_type: str
    protocol: str
    members: tuple[MemberInfo, ...]
    error_code: int = 0


def decode_assignment(raw: bytes | None) -> tuple[tuple[str, int], ...]:
    """The partitions in a consumer-protocol member assignment ('' or foreign: none)."""
    if not raw:
        return ()
    try:
        decoded: Any = ConsumerProtocolMemberAssignment.decode(raw)
        return tuple(sorted((str(t), int(p)) for t, ps in decoded.assignment for p in ps))
    except Exception:  # a protocol that is not "consumer" (connect, a custom assignor)
        return ()


async def describe_groups(admin: AIOKafkaAdminClient, group_ids: list[str]) -> list[GroupInfo]:
    """DescribeGroups v4 on each group's coordinator: state and members with instance ids."""
    out: list[GroupInfo] = []
    for group_id in group_ids:
        node = await admin.find_coordinator(group_id)
        response: Any = await admin._send_request(DescribeGroupsV4([group_id]), node)
        for error, group, state, ptype, protocol, members, _ops in response.groups:
            out.append(
                GroupInfo(
                    group_id=group,
                    state=state,
                    protocol_type=ptype,
                    protocol=protocol,
                    members=tuple(
                        MemberInfo(
                            member_id=m[0],
                            instance_id=m[1],
                            client_id=m[2],
                            host=m[3],
                            assignment=decode_assignment(m[5]),
                        )
                        for m in members
                    ),
                    error_code=error,
                )
            )
    return out


async def remove_static_members(
    admin: AIOKafkaAdminClient, group_id: str, instance_ids: list[str]
) -> dict[str, int]:
    """LeaveGroup v3 for ``instance_ids``: the error code per instance id (0: removed)."""
    if not instance_ids:
        return {}
    node = await admin.find_coordinator(group_id)
    response: Any = await admin._send_request(LeaveGroupV3(group_id, instance_ids), node)
    result = {str(m[1]): int(m[2]) for m in response.members}
    if response.error_code:  # a group-level error: every instance failed with it
        return {instance: int(response.error_code) for instance in instance_ids}
    return {instance: result.get(instance, 0) for instance in instance_ids}
