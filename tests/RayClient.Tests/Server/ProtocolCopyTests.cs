using Google.Protobuf.Reflection;
using RayClient.Server;
using ClientProtocol = Ray.Rpc;
using ServerProtocol = RayClient.Server.Protocol;

namespace RayClient.Tests.Server;

/// <summary>
/// The client and the embedded server generate their protocol types from the one
/// proto/ray_client.proto, each under its own C# namespace (issue 11): what goes on the wire must
/// be the same for both, and each assembly holds only its half of the stubs.
/// </summary>
public sealed class ProtocolCopyTests
{
    [Fact]
    public void Services_ServerCopy_HaveTheClientsFullNamesAndMethods()
    {
        var client = ClientProtocol.RayClientReflection.Descriptor;
        var server = ServerProtocol.RayClientReflection.Descriptor;

        Assert.Equal("ray.rpc", client.Package);
        Assert.Equal(client.Package, server.Package);
        Assert.Equal(
            ["ray.rpc.RayletDriver", "ray.rpc.RayletDataStreamer", "ray.rpc.RayletLogStreamer"],
            client.Services.Select(s => s.FullName));
        Assert.Equal(Describe(client.Services), Describe(server.Services));
        Assert.Equal("ray.rpc.RayletDriver", ServerProtocol.RayletDriver.Descriptor.FullName);
    }

    [Fact]
    public void Messages_ServerCopy_HaveTheClientsNamesFieldsAndNumbers()
    {
        var client = ClientProtocol.RayClientReflection.Descriptor;
        var server = ServerProtocol.RayClientReflection.Descriptor;

        Assert.Equal(Describe(client.MessageTypes), Describe(server.MessageTypes));
        Assert.Equal(client.EnumTypes.Select(e => e.FullName), server.EnumTypes.Select(e => e.FullName));
        Assert.Equal("RayClient.Server.Protocol", typeof(ServerProtocol.DataRequest).Namespace);
    }

    [Fact]
    public void Datapath_ServerMethod_HasTheClientsFullName()
    {
        Assert.Equal("/ray.rpc.RayletDataStreamer/Datapath", RayClient.Session.PooledWire.ClientDatapath.FullName);
        Assert.Equal(RayClient.Session.PooledWire.ClientDatapath.FullName, ServerProtocol.PooledRequestWire.ServerDatapath.FullName);
    }

    [Fact]
    public void Stubs_EachAssembly_HoldsOnlyItsHalf()
    {
        var clientTypes = typeof(RaySession).Assembly.GetTypes().Select(t => t.FullName!).ToList();
        var serverTypes = typeof(LocalRayServer).Assembly.GetTypes().Select(t => t.FullName!).ToList();

        Assert.Contains("Ray.Rpc.RayletDriver+RayletDriverClient", clientTypes);
        Assert.DoesNotContain(clientTypes, name => name.EndsWith("Base", StringComparison.Ordinal) && name.StartsWith("Ray.Rpc.", StringComparison.Ordinal));
        Assert.Contains("RayClient.Server.Protocol.RayletDriver+RayletDriverBase", serverTypes);
        Assert.DoesNotContain(serverTypes, name => name.EndsWith("Client", StringComparison.Ordinal) && name.StartsWith("RayClient.Server.Protocol.", StringComparison.Ordinal));
        Assert.DoesNotContain(serverTypes, name => name.StartsWith("Ray.Rpc.", StringComparison.Ordinal));
    }

    private static List<string> Describe(IEnumerable<ServiceDescriptor> services) =>
        [.. services.SelectMany(s => s.Methods.Select(m =>
            $"{s.FullName}/{m.Name}({(m.IsClientStreaming ? "stream " : "")}{m.InputType.FullName}) -> {(m.IsServerStreaming ? "stream " : "")}{m.OutputType.FullName}"))];

    private static List<string> Describe(IEnumerable<MessageDescriptor> messages) =>
        [.. messages.SelectMany(m => m.Fields.InDeclarationOrder().Select(f =>
                $"{m.FullName}.{f.Name}={f.FieldNumber}:{f.FieldType}:{(f.FieldType is FieldType.Message or FieldType.Enum ? (f.FieldType == FieldType.Message ? f.MessageType.FullName : f.EnumType.FullName) : "")}:{f.ContainingOneof?.Name}:{f.IsRepeated}")
            .Concat(Describe(m.NestedTypes)))];
}
