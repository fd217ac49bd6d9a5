"""The network: a VPC the stack creates (two public subnets for the load balancer and the tasks, two private
ones for RDS; no NAT gateway, so tasks get public addresses and take no inbound traffic) or an existing one,
the security groups, and the API's application load balancer."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from troposphere import GetAtt, GetAZs, Ref, Select, Sub, Tags, Template, ec2
from troposphere import elasticloadbalancingv2 as elb

from services.runtime.deploy.environment import Environment

API_PORT = 5000


@dataclass(frozen=True)
class Net:
    vpc: Any
    public_subnets: list[Any]
    task_subnets: list[Any]
    database_subnets: list[Any]
    assign_public_ip: bool
    alb_group: Any
    api_group: Any
    task_group: Any
    database_group: Any


def add_network(t: Template, env: Environment) -> Net:
    network = env.network
    if network.created:
        vpc, public, private = _create_vpc(t, env)
        task_subnets, database_subnets, public_ip = public, private, True
    else:
        vpc = network.vpc_id
        public = list(network.public_subnets)
        task_subnets = list(network.task_subnets)
        database_subnets = list(network.database_subnets or network.task_subnets)
        public_ip = network.assign_public_ip
    groups = _security_groups(t, env, vpc)
    return Net(vpc, public, task_subnets, database_subnets, public_ip, *groups)


def _create_vpc(t: Template, env: Environment) -> tuple[Any, list[Any], list[Any]]:
    base = env.network.vpc_cidr.split(".")[1]
    vpc = t.add_resource(ec2.VPC("Vpc", CidrBlock=env.network.vpc_cidr, EnableDnsSupport=True,
                                 EnableDnsHostnames=True, Tags=Tags(Name=f"dart-{env.name}")))
    gateway = t.add_resource(ec2.InternetGateway("InternetGateway", Tags=Tags(Name=f"dart-{env.name}")))
    attachment = t.add_resource(ec2.VPCGatewayAttachment("GatewayAttachment", VpcId=Ref(vpc),
                                                         InternetGatewayId=Ref(gateway)))
    public_routes = t.add_resource(ec2.RouteTable("PublicRoutes", VpcId=Ref(vpc)))
    t.add_resource(ec2.Route("PublicDefaultRoute", RouteTableId=Ref(public_routes), DestinationCidrBlock="0.0.0.0/0",
                             GatewayId=Ref(gateway), DependsOn=attachment.title))
    private_routes = t.add_resource(ec2.RouteTable("PrivateRoutes", VpcId=Ref(vpc)))
    public, private = [], []
    for zone in (0, 1):
        subnet = t.add_resource(ec2.Subnet(
            f"PublicSubnet{zone + 1}", VpcId=Ref(vpc), CidrBlock=f"10.{base}.{zone * 16}.0/20",
            AvailabilityZone=Select(zone, GetAZs("")), MapPublicIpOnLaunch=False,
            Tags=Tags(Name=f"dart-{env.name}-public-{zone + 1}")))
        t.add_resource(ec2.SubnetRouteTableAssociation(f"PublicSubnet{zone + 1}Routes", SubnetId=Ref(subnet),
                                                       RouteTableId=Ref(public_routes)))
        public.append(Ref(subnet))
        subnet = t.add_resource(ec2.Subnet(
            f"PrivateSubnet{zone + 1}", VpcId=Ref(vpc), CidrBlock=f"10.{base}.{32 + zone * 16}.0/20",
            AvailabilityZone=Select(zone, GetAZs("")), Tags=Tags(Name=f"dart-{env.name}-private-{zone + 1}")))
        t.add_resource(ec2.SubnetRouteTableAssociation(f"PrivateSubnet{zone + 1}Routes", SubnetId=Ref(subnet),
                                                       RouteTableId=Ref(private_routes)))
        private.append(Ref(subnet))
    return Ref(vpc), public, private


def _security_groups(t: Template, env: Environment, vpc: Any) -> tuple[Any, Any, Any, Any]:
    """The load balancer takes HTTP(S) from ``api.allowed_cidr`` and from dart's tasks (engines call the API);
    the API takes its port from the load balancer only; other tasks take nothing; the database takes
    PostgreSQL from dart's tasks only."""
    port = 443 if env.api.certificate_arn else 80
    tasks = t.add_resource(ec2.SecurityGroup(
        "TaskGroup", GroupDescription=f"dart {env.name}: relay, workers, engines (no inbound)", VpcId=vpc))
    alb = t.add_resource(ec2.SecurityGroup(
        "LoadBalancerGroup", GroupDescription=f"dart {env.name}: the API load balancer", VpcId=vpc,
        SecurityGroupIngress=[
            ec2.SecurityGroupRule(IpProtocol="tcp", FromPort=port, ToPort=port, CidrIp=env.api.allowed_cidr),
            # engines call the API through it (inside the VPC when the load balancer is internal)
            ec2.SecurityGroupRule(IpProtocol="tcp", FromPort=port, ToPort=port,
                                  SourceSecurityGroupId=GetAtt(tasks, "GroupId")),
        ]))
    api = t.add_resource(ec2.SecurityGroup(
        "ApiGroup", GroupDescription=f"dart {env.name}: the API tasks", VpcId=vpc,
        SecurityGroupIngress=[ec2.SecurityGroupRule(IpProtocol="tcp", FromPort=API_PORT, ToPort=API_PORT,
                                                    SourceSecurityGroupId=GetAtt(alb, "GroupId"))]))
    database = t.add_resource(ec2.SecurityGroup(
        "DatabaseGroup", GroupDescription=f"dart {env.name}: PostgreSQL", VpcId=vpc,
        SecurityGroupIngress=[
            ec2.SecurityGroupRule(IpProtocol="tcp", FromPort=5432, ToPort=5432,
                                  SourceSecurityGroupId=GetAtt(group, "GroupId"))
            for group in (api, tasks)
        ]))
    return GetAtt(alb, "GroupId"), GetAtt(api, "GroupId"), GetAtt(tasks, "GroupId"), GetAtt(database, "GroupId")


def add_load_balancer(t: Template, env: Environment, net: Net) -> tuple[Any, Any, str]:
    """The API's load balancer, target group and listener; returns (target group, listener, the API's base URL)."""
    alb = t.add_resource(elb.LoadBalancer(
        "LoadBalancer", Scheme="internal" if env.api.internal else "internet-facing", Type="application",
        Subnets=net.public_subnets, SecurityGroups=[net.alb_group],
        LoadBalancerAttributes=[elb.LoadBalancerAttributes(Key="idle_timeout.timeout_seconds", Value="60")]))
    target = t.add_resource(elb.TargetGroup(
        "ApiTargets", Port=API_PORT, Protocol="HTTP", TargetType="ip", VpcId=net.vpc,
        HealthCheckPath="/health", HealthCheckIntervalSeconds=15, HealthyThresholdCount=2,
        Matcher=elb.Matcher(HttpCode="200"),
        TargetGroupAttributes=[elb.TargetGroupAttribute(Key="deregistration_delay.timeout_seconds", Value="30")]))
    forward = [elb.Action(Type="forward", TargetGroupArn=Ref(target))]
    if env.api.certificate_arn:
        listener = t.add_resource(elb.Listener(
            "ApiListener", LoadBalancerArn=Ref(alb), Port=443, Protocol="HTTPS",
            Certificates=[elb.Certificate(CertificateArn=env.api.certificate_arn)],
            SslPolicy="ELBSecurityPolicy-TLS13-1-2-2021-06", DefaultActions=forward))
        scheme = "https"
    else:
        listener = t.add_resource(elb.Listener("ApiListener", LoadBalancerArn=Ref(alb), Port=80, Protocol="HTTP",
                                               DefaultActions=forward))
        scheme = "http"
    return target, listener, Sub(f"{scheme}://${{{alb.title}.DNSName}}")
