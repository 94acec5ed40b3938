using System.IO.Compression;
using System.Text;
using System.Text.Json;
using Google.Protobuf;
using Grpc.Core;
using Grpc.Net.Client;
using Ray.Rpc;
using RayClient.FunctionalTests.Infrastructure;
using RayClient.Serialization;
using RayClient.Tests.Serialization;

namespace RayClient.FunctionalTests;

/// <summary>
/// The embedded server as Ray's own Python client meets it: a raw gRPC client (generated stubs)
/// sends the bytes Ray's client sends, pickled by CPython with stand-ins that have Ray's names
/// and layouts (issue 10 §1).
/// </summary>
[Collection(ServerCollection.Name)]
public sealed class RayPythonClientTests(ServerFixture fixture)
{
    private const string Module = """
        import os

        VALUE = "imported from the working dir"

        def describe(from_ref, plain, scale=1):
            return [os.environ.get("GREETING"), VALUE, from_ref, plain * scale]

        class Counter:
            def __init__(self):
                self.n = 0

            def incr(self):
                self.n += 1
                return self.n
        """;

    /// <summary>Stands for the object id of the put (28 bytes, as Ray's ids); replaced once the server has named it.</summary>
    private static readonly byte[] RefPlaceholder = Encoding.ASCII.GetBytes("REF-PLACEHOLDER-0123456789ab");

    [Fact]
    public async Task Init_JobConfigWithRayRuntimeEnv_WorkingDirAndEnvVarsReachTheTask()
    {
        var uri = $"gcs://_ray_pkg_{Guid.NewGuid():N}.zip";
        var pickles = MakePickles(uri);
        await using var client = RawClient.Open(fixture.Server.Port);
        await client.InitAsync(uri, ZipModule(), pickles["job_config"]);

        var function = await client.PutAsync(pickles["function"]);
        var value = await client.PutAsync(pickles["value"]);
        var ticket = await client.ScheduleAsync(function, WithRef(pickles["args"], value), pickles["options"]);
        Assert.True(ticket.Valid, Describe(ticket.Error));

        var result = await client.GetValueAsync(Assert.Single(ticket.ReturnIds));

        Assert.Equal(new List<object?> { "hello from a RuntimeEnv", "imported from the working dir", "value from a put", "plainplain" }, result);
    }

    [Fact]
    public async Task Datapath_GarbageOptionsArgsAndPuts_AreAnsweredAndTheStreamGoesOn()
    {
        var uri = $"gcs://_ray_pkg_{Guid.NewGuid():N}.zip";
        var pickles = MakePickles(uri);
        await using var client = RawClient.Open(fixture.Server.Port);
        await client.InitAsync(uri, ZipModule(), pickles["job_config"]);
        var function = await client.PutAsync(pickles["function"]);
        var value = await client.PutAsync(pickles["value"]);
        var args = WithRef(pickles["args"], value);
        // Bytes that start like a pickle and mention PickleStub, so the server has to read them.
        byte[] garbage = [0x80, 0x05, .. "PickleStub"u8, 0xff, 0xfe];

        var badOptions = await client.ScheduleAsync(function, args, garbage);
        var notADict = await client.ScheduleAsync(function, args, pickles["options_list"]);
        var hugeInt = await client.ScheduleAsync(function, args, pickles["options_huge"]);
        var badArgs = await client.ScheduleAsync(function, garbage, pickles["options"]);
        var badPut = await client.SendAsync(new DataRequest { Put = new PutRequest { Data = ByteString.CopyFrom(garbage), ChunkId = 0, TotalChunks = 1, TotalSize = garbage.Length } });

        Assert.False(badOptions.Valid);
        Assert.EndsWith("UnpicklingError", PythonErrorDecoder.Decode(badOptions.Error.Memory).TypeName, StringComparison.Ordinal);
        Assert.False(notADict.Valid);
        Assert.Contains("must be a pickled dict", Describe(notADict.Error), StringComparison.Ordinal);
        Assert.False(hugeInt.Valid);
        Assert.Contains("num_returns", Describe(hugeInt.Error), StringComparison.Ordinal);
        Assert.False(badArgs.Valid);
        Assert.EndsWith("UnpicklingError", PythonErrorDecoder.Decode(badArgs.Error.Memory).TypeName, StringComparison.Ordinal);
        Assert.False(badPut.Put.Valid);
        Assert.EndsWith("UnpicklingError", PythonErrorDecoder.Decode(badPut.Put.Error.Memory).TypeName, StringComparison.Ordinal);

        // The same stream still runs tasks.
        var ticket = await client.ScheduleAsync(function, args, pickles["options"]);
        Assert.True(ticket.Valid, Describe(ticket.Error));
        Assert.Equal("plainplain", Assert.IsType<List<object?>>(await client.GetValueAsync(ticket.ReturnIds[0]))[3]);
    }

    [Fact]
    public async Task Datapath_BytesThatAreNotADataRequest_EndWithInvalidArgument()
    {
        using var channel = GrpcChannel.ForAddress($"http://127.0.0.1:{fixture.Server.Port}");
        var raw = new Method<byte[], byte[]>(MethodType.DuplexStreaming, "ray.rpc.RayletDataStreamer", "Datapath", Marshallers.Create(b => b, b => b), Marshallers.Create(b => b, b => b));
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        var metadata = new Metadata { { "client_id", Guid.NewGuid().ToString("N") } };
        using var call = channel.CreateCallInvoker().AsyncDuplexStreamingCall(raw, null, new CallOptions(metadata, cancellationToken: cts.Token));

        // Field 0x1fffffff with wire type 7: not a protobuf message at all.
        await call.RequestStream.WriteAsync([0xff, 0xff, 0xff, 0xff, 0xff, 0x07]);
        var error = await Assert.ThrowsAsync<RpcException>(() => call.ResponseStream.MoveNext(cts.Token));

        Assert.Equal(StatusCode.InvalidArgument, error.StatusCode);
        Assert.Contains("DataRequest", error.Status.Detail, StringComparison.Ordinal);
    }

    [Fact]
    public async Task UnaryListNamedActorsAndTerminate_NamedActorFromTheDatapath_IsListedAndReallyKilled()
    {
        var uri = $"gcs://_ray_pkg_{Guid.NewGuid():N}.zip";
        var rayNamespace = $"unary-{Guid.NewGuid():N}";
        var actorName = $"counter-{Guid.NewGuid():N}";
        var pickles = MakePickles(uri, rayNamespace, actorName);
        await using var client = RawClient.Open(fixture.Server.Port);
        await client.InitAsync(uri, ZipModule(), pickles["job_config"]);

        // A named actor created over the Datapath, as Ray's client creates one.
        var cls = await client.PutAsync(pickles["actor_class"]);
        var created = (await client.SendAsync(new DataRequest { Task = new ClientTask
        {
            Type = ClientTask.Types.RemoteExecType.Actor,
            Name = "Counter",
            PayloadId = cls,
            Options = new TaskOptions { PickledOptions = ByteString.CopyFrom(pickles["actor_options"]) },
            Data = ByteString.CopyFrom(pickles["no_args"]),
            ChunkId = 0,
            TotalChunks = 1,
        } })).TaskTicket;
        Assert.True(created.Valid, Describe(created.Error));
        var actorId = Assert.Single(created.ReturnIds);
        Assert.Equal(1L, Convert.ToInt64(await client.GetValueAsync(await client.CallAsync(actorId, "incr", pickles["no_args"])), System.Globalization.CultureInfo.InvariantCulture));

        // The unary ListNamedActors answers what the Datapath's does: names in the job's namespace,
        // {"name", "namespace"} objects across namespaces.
        var unaryOwn = await client.Driver.ListNamedActorsAsync(new ClientListNamedActorsRequest { AllNamespaces = false }, client.Options());
        var unaryAll = await client.Driver.ListNamedActorsAsync(new ClientListNamedActorsRequest { AllNamespaces = true }, client.Options());
        var streamOwn = (await client.SendAsync(new DataRequest { ListNamedActors = new ClientListNamedActorsRequest { AllNamespaces = false } })).ListNamedActors;
        var streamAll = (await client.SendAsync(new DataRequest { ListNamedActors = new ClientListNamedActorsRequest { AllNamespaces = true } })).ListNamedActors;
        using (var own = JsonDocument.Parse(unaryOwn.ActorsJson))
        {
            Assert.Equal([actorName], own.RootElement.EnumerateArray().Select(e => e.GetString()));
        }

        Assert.Equal(streamOwn.ActorsJson, unaryOwn.ActorsJson);
        using (var all = JsonDocument.Parse(unaryAll.ActorsJson))
        {
            Assert.Contains(all.RootElement.EnumerateArray(), e => e.GetProperty("name").GetString() == actorName && e.GetProperty("namespace").GetString() == rayNamespace);
        }

        Assert.Equal(streamAll.ActorsJson, unaryAll.ActorsJson);

        // The unary Terminate really kills it: a later call fails with the actor-died error.
        var terminated = await client.Driver.TerminateAsync(
            new TerminateRequest { ClientId = client.ClientId, Actor = new TerminateRequest.Types.ActorTerminate { Id = actorId, NoRestart = true } }, client.Options());
        Assert.True(terminated.Ok);
        var error = await client.GetErrorAsync(await client.CallAsync(actorId, "incr", pickles["no_args"]));
        Assert.Equal("ActorDiedError", error.TypeName.Split('.')[^1]);
        // Its name is freed once its process is gone (as on Ray, a little after ray.kill returns).
        await Eventually.TrueAsync(
            async () => (await client.Driver.ListNamedActorsAsync(new ClientListNamedActorsRequest { AllNamespaces = false }, client.Options())).ActorsJson == "[]",
            "the killed actor is no longer listed");
    }

    [Fact]
    public async Task UnaryTerminate_TaskObject_CancelsTheRunningTask()
    {
        var uri = $"gcs://_ray_pkg_{Guid.NewGuid():N}.zip";
        var pickles = MakePickles(uri);
        await using var client = RawClient.Open(fixture.Server.Port);
        await client.InitAsync(uri, ZipModule(), pickles["job_config"]);
        var sleep = await client.PutAsync(pickles["sleep"]);
        var ticket = (await client.SendAsync(new DataRequest { Task = new ClientTask
        {
            Type = ClientTask.Types.RemoteExecType.Function,
            Name = "sleep",
            PayloadId = sleep,
            Options = new TaskOptions { PickledOptions = ByteString.CopyFrom(pickles["options"]) },
            Data = ByteString.CopyFrom(pickles["sleep_args"]),
            ChunkId = 0,
            TotalChunks = 1,
        } })).TaskTicket;
        Assert.True(ticket.Valid, Describe(ticket.Error));
        await Eventually.TrueAsync(
            () => fixture.Server.State.Engine.Pool.Snapshot().Any(w => w.CurrentClientId == client.ClientId && w.CurrentTaskName is not null),
            "the task runs on a worker");

        var cancelled = await client.Driver.TerminateAsync(new TerminateRequest
        {
            ClientId = client.ClientId,
            TaskObject = new TerminateRequest.Types.TaskObjectTerminate { Id = Assert.Single(ticket.ReturnIds), Force = true, Recursive = true },
        }, client.Options());

        Assert.True(cancelled.Ok);
        var error = await client.GetErrorAsync(ticket.ReturnIds[0]); // well before the task's 600 s
        Assert.Equal("TaskCancelledError", error.TypeName.Split('.')[^1]);
    }

    [Fact]
    public async Task UnaryTerminate_UnknownIdsOrNoClientId_FailAsRaysServerDoes()
    {
        var uri = $"gcs://_ray_pkg_{Guid.NewGuid():N}.zip";
        var pickles = MakePickles(uri);
        await using var client = RawClient.Open(fixture.Server.Port);
        await client.InitAsync(uri, ZipModule(), pickles["job_config"]);
        var unknown = ByteString.CopyFrom(new byte[16]);

        // server.py: a KeyError from its tables, returned through the context as ABORTED + base64 pickle.
        var actor = await Assert.ThrowsAsync<RpcException>(async () => await client.Driver.TerminateAsync(
            new TerminateRequest { ClientId = client.ClientId, Actor = new TerminateRequest.Types.ActorTerminate { Id = unknown, NoRestart = true } }, client.Options()));
        var task = await Assert.ThrowsAsync<RpcException>(async () => await client.Driver.TerminateAsync(
            new TerminateRequest { ClientId = client.ClientId, TaskObject = new TerminateRequest.Types.TaskObjectTerminate { Id = ByteString.CopyFrom(new byte[28]), Force = true, Recursive = true } }, client.Options()));
        // The proxier routes by the client_id metadata: none (or an unknown one) → NOT_FOUND.
        var anonymous = await Assert.ThrowsAsync<RpcException>(async () => await client.Driver.TerminateAsync(
            new TerminateRequest { Actor = new TerminateRequest.Types.ActorTerminate { Id = unknown } }));
        var anonymousList = await Assert.ThrowsAsync<RpcException>(async () => await client.Driver.ListNamedActorsAsync(new ClientListNamedActorsRequest()));

        foreach (var aborted in new[] { actor, task })
        {
            Assert.Equal(StatusCode.Aborted, aborted.StatusCode);
            Assert.Equal("KeyError", PythonErrorDecoder.Decode(Convert.FromBase64String(aborted.Status.Detail)).TypeName.Split('.')[^1]);
        }

        Assert.Equal(StatusCode.NotFound, anonymous.StatusCode);
        Assert.Equal(StatusCode.NotFound, anonymousList.StatusCode);
    }

    /// <summary>The args pickle names the put object through the placeholder id; swap in the real id (same length).</summary>
    private static byte[] WithRef(byte[] args, ByteString id)
    {
        Assert.Equal(RefPlaceholder.Length, id.Length);
        var copy = (byte[])args.Clone();
        var at = copy.AsSpan().IndexOf(RefPlaceholder);
        Assert.True(at >= 0, "the args pickle carries the placeholder id");
        id.Span.CopyTo(copy.AsSpan(at));
        return copy;
    }

    private static string Describe(ByteString error) => error.IsEmpty ? "(no error)" : PythonErrorDecoder.Decode(error.Memory).ToString();

    private static byte[] ZipModule()
    {
        using var buffer = new MemoryStream();
        using (var zip = new ZipArchive(buffer, ZipArchiveMode.Create, leaveOpen: true))
        {
            using var writer = new StreamWriter(zip.CreateEntry("pyclient_mod.py").Open());
            writer.Write(Module);
        }

        return buffer.ToArray();
    }

    private static Dictionary<string, byte[]> MakePickles(string uri, string? rayNamespace = null, string actorName = "counter")
    {
        var output = PythonRunner.Run(RayPythonClient.Script + $$"""

            import time
            _mod = _module("pyclient_mod")
            def describe(from_ref, plain, scale=1):
                pass
            describe.__module__ = "pyclient_mod"
            _mod.describe = describe
            class Counter:
                pass
            Counter.__module__ = "pyclient_mod"
            _mod.Counter = Counter

            client_id = "{{Guid.NewGuid():N}}"
            env = RuntimeEnv(working_dir="{{uri}}", env_vars={"GREETING": "hello from a RuntimeEnv"},
                             config=RuntimeEnvConfig(setup_timeout_seconds=60))
            out = {
                # worker.py _server_init: pickle.dumps(job_config), the default protocol.
                "job_config": dumps_job_config(ray_job_config("2.30", env, {{(rayNamespace is null ? "None" : $"\"{rayNamespace}\"")}}), pickle.DEFAULT_PROTOCOL),
                # A function of an importable module: cloudpickle pickles it by reference.
                "function": pickle.dumps(describe, protocol=5),
                "value": dumps_from_client("value from a put", client_id),
                # ClientTask.data: dumps_from_client((args, kwargs)).
                "args": dumps_from_client(((ClientObjectRef(b"REF-PLACEHOLDER-0123456789ab"), "plain"), {"scale": 2}), client_id),
                # TaskOptions.pickled_options: pickle.dumps(options).
                "options": pickle.dumps({"num_cpus": 1, "max_retries": 0}),
                "options_list": pickle.dumps(["num_cpus", 1]),
                "options_huge": pickle.dumps({"num_returns": 2 ** 100}),
                # An actor class of an importable module (by reference), and its options.
                "actor_class": pickle.dumps(Counter, protocol=5),
                "actor_options": pickle.dumps({"name": "{{actorName}}", "max_restarts": 0}),
                "no_args": dumps_from_client(((), {}), client_id),
                "sleep": pickle.dumps(time.sleep, protocol=5),
                "sleep_args": dumps_from_client(((600,), {}), client_id),
            }
            print(json.dumps({k: b64(v) for k, v in out.items()}))
            """);
        using var json = JsonDocument.Parse(output);
        return json.RootElement.EnumerateObject().ToDictionary(p => p.Name, p => Convert.FromBase64String(p.Value.GetString()!));
    }

    /// <summary>A bare Ray client over the generated stubs: one Datapath stream, one request at a time.</summary>
    private sealed class RawClient : IAsyncDisposable
    {
        private readonly GrpcChannel _channel;
        private readonly Metadata _metadata;
        private readonly AsyncDuplexStreamingCall<DataRequest, DataResponse> _data;
        private readonly CancellationTokenSource _timeout = new(TimeSpan.FromSeconds(60));
        private int _reqId;

        private RawClient(int port)
        {
            _channel = GrpcChannel.ForAddress($"http://127.0.0.1:{port}");
            ClientId = Guid.NewGuid().ToString("N");
            _metadata = new Metadata { { "client_id", ClientId } };
            Driver = new RayletDriver.RayletDriverClient(_channel);
            _data = new RayletDataStreamer.RayletDataStreamerClient(_channel).Datapath(new CallOptions(_metadata, cancellationToken: _timeout.Token));
        }

        public RayletDriver.RayletDriverClient Driver { get; }

        public string ClientId { get; }

        public static RawClient Open(int port) => new(port);

        public CallOptions Options() => new(_metadata, cancellationToken: _timeout.Token);

        public async Task<DataResponse> SendAsync(DataRequest request)
        {
            request.ReqId = ++_reqId;
            await _data.RequestStream.WriteAsync(request, _timeout.Token);
            Assert.True(await _data.ResponseStream.MoveNext(_timeout.Token), "the Datapath ended instead of answering");
            var response = _data.ResponseStream.Current;
            Assert.Equal(request.ReqId, response.ReqId);
            return response;
        }

        /// <summary>What Ray's client does before its first task: upload the working dir's package, then Init with the pickled job config.</summary>
        public async Task InitAsync(string packageUri, byte[] package, byte[] jobConfig)
        {
            await Driver.KVPutAsync(new KVPutRequest { Key = ByteString.CopyFromUtf8(packageUri), Value = ByteString.CopyFrom(package) }, Options());
            var init = await SendAsync(new DataRequest { Init = new InitRequest { JobConfig = ByteString.CopyFrom(jobConfig), RayInitKwargs = "{}" } });
            Assert.True(init.Init.Ok, init.Init.Msg);
        }

        public async Task<ByteString> PutAsync(byte[] pickle)
        {
            var response = await SendAsync(new DataRequest { Put = new PutRequest { Data = ByteString.CopyFrom(pickle), ChunkId = 0, TotalChunks = 1, TotalSize = pickle.Length } });
            Assert.True(response.Put.Valid, Describe(response.Put.Error));
            return response.Put.Id;
        }

        public async Task<ClientTaskTicket> ScheduleAsync(ByteString function, byte[] args, byte[] options)
        {
            var task = new ClientTask
            {
                Type = ClientTask.Types.RemoteExecType.Function,
                Name = "describe",
                PayloadId = function,
                Options = new TaskOptions { PickledOptions = ByteString.CopyFrom(options) },
                Data = ByteString.CopyFrom(args),
                ChunkId = 0,
                TotalChunks = 1,
            };
            return (await SendAsync(new DataRequest { Task = task })).TaskTicket;
        }

        public async Task<object?> GetValueAsync(ByteString id)
        {
            var response = await SendAsync(new DataRequest { Get = new GetRequest { Ids = { id }, Asynchronous = true } });
            Assert.True(response.Get.Valid, Describe(response.Get.Error));
            Assert.Equal(1, response.Get.TotalChunks);
            var value = PickleReader.Read(response.Get.Data.Memory);
            Assert.False(PythonErrorDecoder.TryDecodeException(value, out var error), $"the task failed: {error}");
            return value;
        }

        public async Task<ByteString> CallAsync(ByteString actorId, string method, byte[] args)
        {
            var task = new ClientTask { Type = ClientTask.Types.RemoteExecType.Method, Name = method, PayloadId = actorId, Data = ByteString.CopyFrom(args), ChunkId = 0, TotalChunks = 1 };
            var ticket = (await SendAsync(new DataRequest { Task = task })).TaskTicket;
            Assert.True(ticket.Valid, Describe(ticket.Error));
            return Assert.Single(ticket.ReturnIds);
        }

        /// <summary>The error a get of <paramref name="id"/> answers, from the response or the stored value.</summary>
        public async Task<PythonError> GetErrorAsync(ByteString id)
        {
            var response = await SendAsync(new DataRequest { Get = new GetRequest { Ids = { id }, Asynchronous = true } });
            if (!response.Get.Valid)
            {
                return PythonErrorDecoder.Decode(response.Get.Error.Memory);
            }

            Assert.True(PythonErrorDecoder.TryDecodeException(PickleReader.Read(response.Get.Data.Memory), out var error), "the get succeeded");
            return error!;
        }

        public async ValueTask DisposeAsync()
        {
            try
            {
                await SendAsync(new DataRequest { ConnectionCleanup = new ConnectionCleanupRequest() });
                await _data.RequestStream.CompleteAsync();
            }
            catch (RpcException)
            {
            }

            _data.Dispose();
            _channel.Dispose();
            _timeout.Dispose();
        }
    }
}
