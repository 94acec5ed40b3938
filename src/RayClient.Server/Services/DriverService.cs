using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using Google.Protobuf;
using Grpc.Core;
using RayClient.Server.Pickling;
using RayClient.Server.Protocol;
using RayClient.Serialization;
using RayClient.Server.Storage;
using RayClient.Session;

namespace RayClient.Server.Services;

/// <summary>The unary RPCs of <c>ray.rpc.RayletDriver</c> (Ray: <c>python/ray/util/client/server/server.py</c>).</summary>
internal sealed class DriverService : RayletDriver.RayletDriverBase
{
    private const int ChunkSize = 5 * 1024 * 1024;
    private readonly ServerState _state;

    public DriverService(ServerState state) => _state = state;

    private ClientSession RequireSession(ServerCallContext context)
    {
        var clientId = context.RequestHeaders.GetValue("client_id");
        if (string.IsNullOrEmpty(clientId))
        {
            throw new RpcException(new Status(StatusCode.FailedPrecondition, "Missing 'client_id' metadata: every Ray client call carries it."));
        }

        if (!_state.TryGetSession(clientId, out var session) || !session.Initialized)
        {
            throw new RpcException(new Status(StatusCode.NotFound, $"No initialized session for client {clientId}: open the Datapath and send Init first."));
        }

        return session;
    }

    public override async Task GetObject(GetRequest request, IServerStreamWriter<GetResponse> responseStream, ServerCallContext context)
    {
        var clientId = context.RequestHeaders.GetValue("client_id");
        if (string.IsNullOrEmpty(clientId) || !_state.TryGetSession(clientId, out var session))
        {
            await responseStream.WriteAsync(Invalid(ServerErrors.ValueError($"GetObject needs the client_id metadata of a connected client (got '{clientId}')."))).ConfigureAwait(false);
            return;
        }

        var entries = new List<StoredObject>(request.Ids.Count);
        foreach (var raw in request.Ids)
        {
            var id = new RayId(raw.ToByteArray());
            if (!session.TryGetObject(id, out var entry))
            {
                await responseStream.WriteAsync(Invalid(ServerErrors.ValueError($"ClientObjectRef {id.Hex} is not found for client {clientId}"))).ConfigureAwait(false);
                return;
            }

            entries.Add(entry);
        }

        // ray.get(refs, timeout): not ready in time → GetTimeoutError, which clients retry.
        var ready = Task.WhenAll(entries.Select(e => e.Ready));
        if (!ready.IsCompleted)
        {
            var timeout = request.Timeout > 0 ? TimeSpan.FromSeconds(request.Timeout) : Timeout.InfiniteTimeSpan;
            try
            {
                await ready.WaitAsync(timeout, context.CancellationToken).ConfigureAwait(false);
            }
            catch (TimeoutException)
            {
                await responseStream.WriteAsync(Invalid(ServerErrors.GetTimeout($"Get timed out: some object(s) not ready after {request.Timeout.ToString(CultureInfo.InvariantCulture)} s."))).ConfigureAwait(false);
                return;
            }
        }

        if (entries.FirstOrDefault(e => e.IsError) is { } failed)
        {
            await responseStream.WriteAsync(Invalid(failed.Data.ToArray())).ConfigureAwait(false);
            return;
        }

        // The payload is the pickle of a list with one value per id, in request order.
        using var list = PickleComposer.ComposeList(entries.Select(e => e.Data).ToList());
        var data = list.ToArray();
        var total = Math.Max(1, (data.Length + ChunkSize - 1) / ChunkSize);
        for (var i = request.StartChunkId; i < total; i++)
        {
            var offset = i * ChunkSize;
            await responseStream.WriteAsync(new GetResponse
            {
                Valid = true,
                Data = UnsafeByteOperations.UnsafeWrap(data.AsMemory(offset, Math.Min(ChunkSize, data.Length - offset))),
                ChunkId = i,
                TotalChunks = total,
                TotalSize = (ulong)data.Length,
            }).ConfigureAwait(false);
        }
    }

    private static GetResponse Invalid(byte[] error) => new() { Valid = false, Error = ByteString.CopyFrom(error) };

    public override async Task<WaitResponse> WaitObject(WaitRequest request, ServerCallContext context)
    {
        var session = RequireSession(context);
        var entries = new List<StoredObject>(request.ObjectIds.Count);
        foreach (var raw in request.ObjectIds)
        {
            if (!session.TryGetObject(new RayId(raw.ToByteArray()), out var entry))
            {
                throw new RpcException(new Status(StatusCode.InvalidArgument, $"Object {Convert.ToHexStringLower(raw.Span)} is not known for client {session.ClientId}."));
            }

            entries.Add(entry);
        }

        var wanted = (int)Math.Clamp(request.NumReturns, 1, Math.Max(1, entries.Count));
        var timeout = request.Timeout < 0 ? Timeout.InfiniteTimeSpan : TimeSpan.FromSeconds(request.Timeout);
        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(context.CancellationToken);
        if (timeout != Timeout.InfiniteTimeSpan)
        {
            deadline.CancelAfter(timeout);
        }

        var pending = entries.Where(e => !e.IsReady).Select(e => e.Ready).ToList();
        while (entries.Count(e => e.IsReady) < wanted && pending.Count > 0 && !deadline.IsCancellationRequested)
        {
            try
            {
                await Task.WhenAny(pending).WaitAsync(deadline.Token).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (!context.CancellationToken.IsCancellationRequested)
            {
                break;
            }

            pending.RemoveAll(t => t.IsCompleted);
        }

        var response = new WaitResponse { Valid = true };
        var count = 0;
        foreach (var entry in entries)
        {
            if (entry.IsReady && count < wanted)
            {
                response.ReadyObjectIds.Add(UnsafeByteOperations.UnsafeWrap(entry.Id.Bytes));
                count++;
            }
            else
            {
                response.RemainingObjectIds.Add(UnsafeByteOperations.UnsafeWrap(entry.Id.Bytes));
            }
        }

        return response;
    }

    public override Task<ClusterInfoResponse> ClusterInfo(ClusterInfoRequest request, ServerCallContext context)
    {
        var response = new ClusterInfoResponse { Type = request.Type };
        switch (request.Type)
        {
            case ClusterInfoType.Types.TypeEnum.Ping:
                response.Json = "{}";
                break;
            case ClusterInfoType.Types.TypeEnum.IsInitialized:
                response.Json = "true";
                break;
            case ClusterInfoType.Types.TypeEnum.Nodes:
                response.Json = _state.NodesJson();
                break;
            case ClusterInfoType.Types.TypeEnum.ClusterResources:
                response.ResourceTable = Table(_state.Engine.Scheduler.Total);
                break;
            case ClusterInfoType.Types.TypeEnum.AvailableResources:
                response.ResourceTable = Table(_state.Engine.Scheduler.AvailableSnapshot());
                break;
            case ClusterInfoType.Types.TypeEnum.RuntimeContext:
                var session = RequireSession(context);
                response.RuntimeContext = new ClusterInfoResponse.Types.RuntimeContext
                {
                    JobId = ByteString.CopyFrom(session.JobId),
                    NodeId = ByteString.CopyFrom(Convert.FromHexString(_state.NodeId)),
                    Namespace = session.Namespace,
                    RuntimeEnv = session.RuntimeEnvJson,
                    CaptureClientTasks = false,
                };
                break;
            case ClusterInfoType.Types.TypeEnum.Timeline:
                response.Json = "[]";
                break;
            case ClusterInfoType.Types.TypeEnum.DashboardUrl:
                response.Json = "{\"dashboard_url\": \"\"}";
                break;
            default:
                throw new RpcException(new Status(StatusCode.InvalidArgument, $"Unsupported cluster info type {request.Type}."));
        }

        return Task.FromResult(response);
    }

    private static ClusterInfoResponse.Types.ResourceTable Table(IReadOnlyDictionary<string, double> resources)
    {
        var table = new ClusterInfoResponse.Types.ResourceTable();
        foreach (var (name, amount) in resources)
        {
            table.Table[name] = amount;
        }

        return table;
    }

    public override Task<KVGetResponse> KVGet(KVGetRequest request, ServerCallContext context)
    {
        var value = _state.Kv.Get(request.Key.ToByteArray(), request.HasNamespace ? request.Namespace.ToByteArray() : null);
        var response = new KVGetResponse();
        if (value is not null)
        {
            response.Value = UnsafeByteOperations.UnsafeWrap(value);
        }

        return Task.FromResult(response);
    }

    public override Task<KVPutResponse> KVPut(KVPutRequest request, ServerCallContext context)
    {
        var limit = _state.Options.MaxKvValueSize;
        if (request.Value.Length > limit)
        {
            // Ray's GCS refuses a message over max_grpc_message_size; its client server returns
            // the error as ABORTED with the pickled exception in the details (spec §9.4).
            throw KvError(string.Create(CultureInfo.InvariantCulture,
                $"Sent message larger than max ({request.Value.Length} vs. {limit}): a KV value may be at most {limit} bytes (Ray's max_grpc_message_size; LocalRayServerOptions.MaxKvValueSize, rayclient start --max-kv-value-size)."));
        }

        return Task.FromResult(new KVPutResponse
        {
            AlreadyExists = _state.Kv.Put(request.Key.ToByteArray(), request.Value.ToByteArray(), request.Overwrite, request.HasNamespace ? request.Namespace.ToByteArray() : null),
        });
    }

    /// <summary>A KV error as Ray's client server reports it: ABORTED, details = base64 of the pickled exception.</summary>
    private static RpcException KvError(string message) => Aborted("ray.exceptions", "RpcError", message);

    public override Task<KVDelResponse> KVDel(KVDelRequest request, ServerCallContext context) =>
        Task.FromResult(new KVDelResponse
        {
            DeletedNum = _state.Kv.Delete(request.Key.ToByteArray(), request.DelByPrefix, request.HasNamespace ? request.Namespace.ToByteArray() : null),
        });

    public override Task<KVListResponse> KVList(KVListRequest request, ServerCallContext context)
    {
        var response = new KVListResponse();
        foreach (var key in _state.Kv.List(request.Prefix.ToByteArray(), request.HasNamespace ? request.Namespace.ToByteArray() : null))
        {
            response.Keys.Add(UnsafeByteOperations.UnsafeWrap(key));
        }

        return Task.FromResult(response);
    }

    public override Task<KVExistsResponse> KVExists(KVExistsRequest request, ServerCallContext context) =>
        Task.FromResult(new KVExistsResponse { Exists = _state.Kv.Exists(request.Key.ToByteArray(), request.HasNamespace ? request.Namespace.ToByteArray() : null) });

    public override Task<ClientPinRuntimeEnvURIResponse> PinRuntimeEnvURI(ClientPinRuntimeEnvURIRequest request, ServerCallContext context)
    {
        if (request.ExpirationS < 0)
        {
            throw new RpcException(new Status(StatusCode.InvalidArgument, "expiration_s must be >= 0."));
        }

        return Task.FromResult(new ClientPinRuntimeEnvURIResponse()); // packages are kept for the server's lifetime
    }

    public override Task<ClientListNamedActorsResponse> ListNamedActors(ClientListNamedActorsRequest request, ServerCallContext context)
    {
        // server.py ListNamedActors: ray.util.list_named_actors(all_namespaces) as JSON, in the
        // namespace of the job the proxier routed the call to (by its client_id metadata).
        var session = RequireRoutedSession(context);
        return Task.FromResult(new ClientListNamedActorsResponse { ActorsJson = _state.Engine.ListNamedActorsJson(session.Namespace, request.AllNamespaces) });
    }

    public override Task<TerminateResponse> Terminate(TerminateRequest request, ServerCallContext context)
    {
        // server.py Terminate: ray.kill / ray.cancel through the same engine calls as the Datapath.
        // A lookup that fails there raises KeyError, which return_exception_in_context turns into
        // ABORTED with the base64 pickle in the details; Ray's client decodes it (spec §6.1).
        var session = RequireRoutedSession(context);
        switch (request.TerminateTypeCase)
        {
            case TerminateRequest.TerminateTypeOneofCase.Actor:
                var actorId = new RayId(request.Actor.Id.ToByteArray());
                if (!_state.Engine.KillActor(actorId, request.Actor.NoRestart))
                {
                    throw Aborted("builtins", "KeyError", $"Actor {actorId.Hex} is not known to this server.");
                }

                break;
            case TerminateRequest.TerminateTypeOneofCase.TaskObject:
                // Ray looks the ref up under the request's client_id (a different one holds nothing).
                var output = new RayId(request.TaskObject.Id.ToByteArray());
                var sameClient = string.IsNullOrEmpty(request.ClientId) || string.Equals(request.ClientId, session.ClientId, StringComparison.Ordinal);
                if (!sameClient || !_state.Engine.Cancel(session, output, request.TaskObject.Force, request.TaskObject.Recursive))
                {
                    throw Aborted("builtins", "KeyError", $"Object {output.Hex} is not a task result of client {(sameClient ? session.ClientId : request.ClientId)}.");
                }

                break;
            default:
                throw new RpcException(new Status(StatusCode.InvalidArgument, "A TerminateRequest must name an actor or a task object."));
        }

        return Task.FromResult(new TerminateResponse { Ok = true });
    }

    /// <summary>
    /// The session of a call Ray's proxier routes by its <c>client_id</c> metadata: none, or one
    /// without a server behind it, is NOT_FOUND there (proxier.py <c>_call_inner_function</c>).
    /// </summary>
    private ClientSession RequireRoutedSession(ServerCallContext context)
    {
        var clientId = context.RequestHeaders.GetValue("client_id");
        if (string.IsNullOrEmpty(clientId) || !_state.TryGetSession(clientId, out var session) || !session.Initialized)
        {
            throw new RpcException(new Status(StatusCode.NotFound,
                string.IsNullOrEmpty(clientId)
                    ? "Missing 'client_id' metadata: every Ray client call carries it."
                    : $"No initialized session for client {clientId}: open the Datapath and send Init first."));
        }

        return session;
    }

    /// <summary>An error as server.py's return_exception_in_context reports it: ABORTED, details = base64 of the pickle.</summary>
    private static RpcException Aborted(string module, string type, string message) =>
        new(new Status(StatusCode.Aborted, Convert.ToBase64String(ServerErrors.Pickle(module, type, message))));

    // Ray's unary Init/PutObject/Schedule/PrepRuntimeEnv do not work against modern servers
    // (spec §1.3); answer with a status that says what to use instead.
    public override Task<InitResponse> Init(InitRequest request, ServerCallContext context) =>
        throw new RpcException(new Status(StatusCode.Unimplemented, "Init goes over the Datapath stream."));

    public override Task<PutResponse> PutObject(PutRequest request, ServerCallContext context) =>
        throw new RpcException(new Status(StatusCode.Unimplemented, "Puts go over the Datapath stream."));

    public override Task<ClientTaskTicket> Schedule(ClientTask request, ServerCallContext context) =>
        throw new RpcException(new Status(StatusCode.Unimplemented, "Tasks are scheduled over the Datapath stream."));
}
