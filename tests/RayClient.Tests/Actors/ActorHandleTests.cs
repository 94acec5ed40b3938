using Microsoft.Extensions.Time.Testing;
using RayClient.Serialization;
using RayClient.Session;
using RayClient.Tests.Session.Infrastructure;

namespace RayClient.Tests.Actors;

/// <summary>
/// What a handle knows of its actor's name and namespace, and how it prints. The session is a
/// real one over a connection whose Datapath never starts: submissions queue, ids stay pending.
/// </summary>
public sealed class ActorHandleTests : IAsyncLifetime
{
    private static readonly PyActorClass Counter = PyActorClass.Of("tasks", "Counter");
    private static readonly byte[] ActorId = Convert.FromHexString("00112233445566778899aabbccddeeff");
    private readonly List<RayConnection> _connections = [];

    public Task InitializeAsync() => Task.CompletedTask;

    public async Task DisposeAsync()
    {
        foreach (var connection in _connections)
        {
            await connection.DisposeAsync();
        }
    }

    private RaySession Session(string? rayNamespace = null)
    {
        var settings = ConnectionSettings.Resolve(
            new RaySessionOptions { Address = "ray://127.0.0.1:1", Namespace = rayNamespace, TimeProvider = new FakeTimeProvider() }, _ => null);
        var connection = new RayConnection(settings, new InMemoryRayServer(), channel: null);
        _connections.Add(connection);
        return new RaySession(connection);
    }

    [Fact]
    public void Remote_SetNameAndNamespace_HandleReportsThemAndToStringShowsThem()
    {
        var ray = Session("job-ns");

        var actor = ray.Actor(Counter).SetName("counter-1").SetNamespace("shared").Remote();

        Assert.Equal("counter-1", actor.Name);
        Assert.Equal("shared", actor.Namespace);
        Assert.Equal("Counter", actor.ClassName);
        Assert.Equal("Actor(Counter, pending, name=counter-1, namespace=shared)", actor.ToString());
    }

    [Fact]
    public void Remote_NameThroughSetOption_HandleHasNameInTheSessionsNamespace()
    {
        var ray = Session("job-ns");

        var actor = ray.Actor(Counter).SetOption("name", "by-option").Remote();

        Assert.Equal("by-option", actor.Name);
        Assert.Equal("job-ns", actor.Namespace);
        Assert.Equal("Actor(Counter, pending, name=by-option, namespace=job-ns)", actor.ToString());
    }

    [Fact]
    public void Remote_NamedInAnonymousNamespace_NamespaceIsNullAndToStringShowsTheNameOnly()
    {
        var actor = Session().Actor(Counter).SetName("anon-named").Remote();

        Assert.Equal("anon-named", actor.Name);
        Assert.Null(actor.Namespace);
        Assert.Equal("Actor(Counter, pending, name=anon-named)", actor.ToString());
    }

    [Fact]
    public void Remote_Unnamed_NoNameNoNamespaceAndToStringAsBefore()
    {
        var actor = Session("job-ns").Actor(Counter).SetNamespace("ignored-without-a-name").Remote();

        Assert.Null(actor.Name);
        Assert.Null(actor.Namespace);
        Assert.Equal("Actor(Counter, pending)", actor.ToString());
    }

    [Fact]
    public void ToString_AssignedIdAndName_ShowsIdThenNameAndNamespace()
    {
        var ray = Session();
        var named = new PyActorHandle(ray, Task.FromResult(new RayId(ActorId)), "Counter", "counter-1", "shared");
        var unnamed = new PyActorHandle(ray, Task.FromResult(new RayId(ActorId)), "Counter");

        Assert.Equal("Actor(Counter, 00112233445566778899aabbccddeeff, name=counter-1, namespace=shared)", named.ToString());
        Assert.Equal("Actor(Counter, 00112233445566778899aabbccddeeff)", unnamed.ToString());
    }

    [Fact]
    public void Resolve_ActorHandleFromPython_HasNoName()
    {
        var ray = Session("job-ns");

        var resolved = ((IPickleStubResolver)ray).Resolve(new PickleStub("Actor", ray.ClientId, ActorId, null, null));

        var actor = Assert.IsType<PyActorHandle>(resolved);
        Assert.Null(actor.Name);
        Assert.Null(actor.Namespace);
        Assert.Equal("Actor(actor, 00112233445566778899aabbccddeeff)", actor.ToString());
    }
}
