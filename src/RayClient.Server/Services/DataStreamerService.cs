using System.Buffers;
using System.Threading.Channels;
using Google.Protobuf;
using Grpc.Core;
using Microsoft.Extensions.Logging;
using RayClient.Server.Protocol;
using RayClient.Server.Scheduling;
using RayClient.Server.Storage;

namespace RayClient.Server.Services;

/// <summary>
/// The Datapath (Ray: <c>python/ray/util/client/server/dataservicer.py</c>): requests of one
/// stream are processed strictly in arrival order; async gets answer later on the same stream;
/// cacheable responses are kept until acknowledged so a replay after a reconnect is answered
/// without running anything twice.
/// </summary>
internal sealed partial class DataStreamerService
{
    private const int ChunkSize = 5 * 1024 * 1024;
    private static readonly WriteOptions BufferHint = new(WriteFlags.BufferHint);

    private readonly ServerState _state;
    private readonly ServerFaults _faults;
    private readonly ILogger _logger;

    public DataStreamerService(ServerState state, ServerFaults faults)
    {
        _state = state;
        _faults = faults;
        _logger = state.Logger;
    }

    public async Task Datapath(IAsyncStreamReader<DataRequest> requestStream, IServerStreamWriter<DataResponse> responseStream, ServerCallContext context)
    {
        var clientId = context.RequestHeaders.GetValue("client_id");
        if (string.IsNullOrEmpty(clientId))
        {
            throw new RpcException(new Status(StatusCode.InvalidArgument, "The Datapath needs the 'client_id' metadata (32 hex digits), as Ray clients send it."));
        }

        if (_state.IsStopping)
        {
            throw new RpcException(new Status(StatusCode.Unavailable, "The Ray server is shutting down."));
        }

        var reconnectingText = context.RequestHeaders.GetValue("reconnecting");
        var reconnecting = reconnectingText == "True";
        if (reconnectingText is not null and not ("True" or "False"))
        {
            LogBadReconnecting(_logger, reconnectingText);
        }

        ClientSession session;
        if (reconnecting)
        {
            if (!_state.TryGetSession(clientId, out session))
            {
                throw new RpcException(new Status(StatusCode.NotFound, "Attempted to reconnect to a session that has already been cleaned up."));
            }
        }
        else
        {
            session = _state.GetOrCreateSession(clientId);
        }

        var generation = session.BeginStream();
        using var streamCts = CancellationTokenSource.CreateLinkedTokenSource(context.CancellationToken);
        var handle = new StreamHandle(streamCts, context.GetHttpContext());
        var graceful = false;
        LogStreamOpened(_logger, clientId, generation, reconnecting);
        try
        {
            graceful = await ServeStreamAsync(session, handle, requestStream, responseStream, streamCts, context.CancellationToken).ConfigureAwait(false);
        }
        catch (Exception ex)
        {
            LogStreamFailed(_logger, clientId, generation, ex);
            throw;
        }
        finally
        {
            LogStreamEnded(_logger, clientId, generation, graceful);
            // Whatever happened above, this stream no longer blocks the client's next one.
            session.EndStream(handle);
            handle.End();
        }

        _state.OnStreamEnded(session, generation, graceful);
    }

    /// <summary>
    /// Serves one Datapath stream of <paramref name="session"/> until it ends; true when the client
    /// said goodbye (ConnectionCleanup).
    /// </summary>
    private async Task<bool> ServeStreamAsync(
        ClientSession session,
        StreamHandle handle,
        IAsyncStreamReader<DataRequest> requestStream,
        IServerStreamWriter<DataResponse> responseStream,
        CancellationTokenSource streamCts,
        CancellationToken callCancelled)
    {
        // The newest stream of a client wins: a reconnecting client may arrive while the server
        // still thinks the old connection is alive (a black hole). Stop the old handler and let it
        // finish, so chunk collectors and the cache see one stream at a time.
        var previous = session.TakeOverStream(handle);
        if (previous is not null)
        {
            previous.Abort();
            try
            {
                await previous.Finished.Task.WaitAsync(TimeSpan.FromSeconds(10), callCancelled).ConfigureAwait(false);
            }
            catch (TimeoutException)
            {
                LogOldStreamStuck(_logger, session.ClientId);
            }
        }

        Action abort = handle.Abort;
        _faults.RegisterStream(abort);
        var outbound = Channel.CreateUnbounded<DataResponse>();
        var writer = WriteLoopAsync(outbound.Reader, responseStream, streamCts.Token);
        var graceful = false;
        try
        {
            while (await requestStream.MoveNext(streamCts.Token).ConfigureAwait(false))
            {
                var request = requestStream.Current;
                if (request.TypeCase == DataRequest.TypeOneofCase.ConnectionCleanup)
                {
                    graceful = true;
                    outbound.Writer.TryWrite(new DataResponse { ReqId = request.ReqId, ConnectionCleanup = new ConnectionCleanupResponse() });
                    continue;
                }

                await HandleAsync(session, request, outbound.Writer, streamCts.Token).ConfigureAwait(false);
            }
        }
        catch (DatapathProtocolException ex)
        {
            // Protocol violations Ray answers by failing the stream (unrecoverable for the client).
            LogProtocolError(_logger, session.ClientId, ex.Message);
            outbound.Writer.TryComplete();
            await streamCts.CancelAsync().ConfigureAwait(false);
            _state.CloseSession(session);
            throw new RpcException(new Status(StatusCode.FailedPrecondition, ex.Message));
        }
        catch (InvalidProtocolBufferException ex)
        {
            // Bytes that are not a DataRequest: a broken client, not a broken connection (the
            // parser's exception is an IOException, which would otherwise pass for a dropped
            // stream and end the call with OK). Fail the stream with a status that says so.
            LogProtocolError(_logger, session.ClientId, "the Datapath received a message that is not a DataRequest");
            outbound.Writer.TryComplete();
            await streamCts.CancelAsync().ConfigureAwait(false);
            _state.CloseSession(session);
            throw new RpcException(new Status(StatusCode.InvalidArgument, $"The Datapath received a message that is not a ray.rpc.DataRequest: {ex.Message}"));
        }
        catch (Exception ex) when (ex is OperationCanceledException or IOException or InvalidOperationException || (ex is RpcException && callCancelled.IsCancellationRequested))
        {
            // The connection broke; the session waits for a reconnect.
        }
        finally
        {
            outbound.Writer.TryComplete();
            _faults.UnregisterStream(abort);
        }

        try
        {
            await writer.ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is OperationCanceledException or IOException or InvalidOperationException)
        {
        }

        return graceful;
    }

    private async Task WriteLoopAsync(ChannelReader<DataResponse> reader, IServerStreamWriter<DataResponse> stream, CancellationToken cancellationToken)
    {
        while (await reader.WaitToReadAsync(cancellationToken).ConfigureAwait(false))
        {
            while (reader.TryRead(out var response))
            {
                if (_faults.ShouldDropResponse(response))
                {
                    continue;
                }

                stream.WriteOptions = reader.Count > 0 ? BufferHint : null;
                await stream.WriteAsync(response, cancellationToken).ConfigureAwait(false);
            }
        }
    }

    private async Task HandleAsync(ClientSession session, DataRequest request, ChannelWriter<DataResponse> output, CancellationToken cancellationToken)
    {
        switch (request.TypeCase)
        {
            case DataRequest.TypeOneofCase.Acknowledge:
                session.Cache.Acknowledge(request.Acknowledge.ReqId);
                return;
            case DataRequest.TypeOneofCase.Get:
                HandleAsyncGet(session, request, output);
                return;
            case DataRequest.TypeOneofCase.Put:
            case DataRequest.TypeOneofCase.Task:
                await HandleChunkedAsync(session, request, output, cancellationToken).ConfigureAwait(false);
                return;
        }

        await RespondCachedAsync(session, request, output, () => ExecuteAsync(session, request, cancellationToken)).ConfigureAwait(false);
    }

    /// <summary>Answers a cacheable request from the response cache, or executes and caches it.</summary>
    private static async Task RespondCachedAsync(ClientSession session, DataRequest request, ChannelWriter<DataResponse> output, Func<Task<DataResponse>> execute)
    {
        if (session.GraceSeconds <= 0)
        {
            output.TryWrite(await execute().ConfigureAwait(false));
            return;
        }

        var earlier = session.Cache.TryBegin(request.ReqId);
        if (earlier is not null)
        {
            output.TryWrite(await earlier.ConfigureAwait(false));
            return;
        }

        DataResponse response;
        try
        {
            response = await execute().ConfigureAwait(false);
        }
        catch
        {
            session.Cache.Abandon(request.ReqId); // never leave a placeholder a replay would wait on
            throw;
        }

        session.Cache.Complete(request.ReqId, response);
        output.TryWrite(response);
    }

    private async Task<DataResponse> ExecuteAsync(ClientSession session, DataRequest request, CancellationToken cancellationToken)
    {
        var response = new DataResponse { ReqId = request.ReqId };
        switch (request.TypeCase)
        {
            case DataRequest.TypeOneofCase.Init:
                try
                {
                    await _state.InitializeAsync(session, request.Init.JobConfig, request.Init.ReconnectGracePeriod, cancellationToken).ConfigureAwait(false);
                    response.Init = new InitResponse { Ok = true };
                }
                catch (Exception ex) when (ex is RayClient.Server.RuntimeEnv.RuntimeEnvSetupException or RayRuntimeEnvException)
                {
                    response.Init = new InitResponse { Ok = false, Msg = $"RuntimeEnvSetupError: the job's runtime env could not be set up: {ex.Message}" };
                }
                catch (Exception ex) when (ex is not OperationCanceledException)
                {
                    response.Init = new InitResponse { Ok = false, Msg = $"Call to `ray.init()` on the server failed with: {ex.Message}" };
                }

                break;
            case DataRequest.TypeOneofCase.ConnectionInfo:
                response.ConnectionInfo = new ConnectionInfoResponse
                {
                    NumClients = _state.ClientCount,
                    RayVersion = _state.Options.ReportedRayVersion,
                    RayCommit = "rayclient-embedded-server",
                    PythonVersion = _state.PythonVersion,
                };
                break;
            case DataRequest.TypeOneofCase.Release:
                var release = new ReleaseResponse();
                foreach (var id in request.Release.Ids)
                {
                    var released = new RayId(id.ToByteArray());
                    release.Ok.Add(_state.Engine.Release(session, released));
                }

                response.Release = release;
                break;
            case DataRequest.TypeOneofCase.PrepRuntimeEnv:
                response.PrepRuntimeEnv = new PrepRuntimeEnvResponse();
                break;
            case DataRequest.TypeOneofCase.Terminate:
                Terminate(session, request.Terminate);
                response.Terminate = new TerminateResponse { Ok = true };
                break;
            case DataRequest.TypeOneofCase.ListNamedActors:
                response.ListNamedActors = new ClientListNamedActorsResponse { ActorsJson = _state.Engine.ListNamedActorsJson(session.Namespace, request.ListNamedActors.AllNamespaces) };
                break;
            default:
                throw new DatapathProtocolException($"Unsupported Datapath request type {request.TypeCase}.");
        }

        return response;
    }

    // ------------------------------------------------------------------------------------------
    // Puts and tasks
    // ------------------------------------------------------------------------------------------
    private async Task HandleChunkedAsync(ClientSession session, DataRequest request, ChannelWriter<DataResponse> output, CancellationToken cancellationToken)
    {
        var isPut = request.TypeCase == DataRequest.TypeOneofCase.Put;
        var chunkId = isPut ? request.Put.ChunkId : request.Task.ChunkId;
        var totalChunks = isPut ? request.Put.TotalChunks : request.Task.TotalChunks;
        var isFinal = chunkId + 1 == totalChunks;

        // The put's bytes may sit in a pooled buffer (PooledWire); whoever drops them returns it.
        var rented = isPut ? PooledRequestWire.TakeRentedBuffer(request.Put) : null;

        // A replayed request already executed: skip its chunks, re-send the cached answer.
        if (session.GraceSeconds > 0 && session.Cache.Peek(request.ReqId) is { } earlier)
        {
            if (rented is not null)
            {
                ArrayPool<byte>.Shared.Return(rented);
            }

            if (isFinal)
            {
                output.TryWrite(await earlier.ConfigureAwait(false));
            }

            return;
        }

        var collector = isPut ? session.PutChunks : session.TaskChunks;
        var assembled = collector.Add(request.ReqId, chunkId, totalChunks, isPut ? request.Put.Data : request.Task.Data, rented, isPut ? request.Put.TotalSize : 0);
        if (assembled is not { } payload)
        {
            return;
        }

        TaskSpec? accepted = null;
        var response = payload.Limit != UploadLimit.None
            ? TooLarge(request, isPut, payload.TooLargeSize, payload.Limit)
            : isPut ? ExecutePut(session, request, payload) : ExecuteTask(session, request, payload, out accepted);
        if (session.GraceSeconds > 0)
        {
            session.Cache.Store(request.ReqId, response);
        }

        output.TryWrite(response);
        if (accepted is not null)
        {
            // The ticket goes out first; dispatching to a worker happens off the stream's loop.
            _state.Engine.Submit(accepted);
        }
    }

    /// <summary>Refuses a payload the embedded server cannot hold, as an answer (the stream and session go on).</summary>
    private DataResponse TooLarge(DataRequest request, bool isPut, long size, UploadLimit limit)
    {
        var what = isPut ? "object" : "task";
        var message = limit switch
        {
            UploadLimit.Session => string.Create(System.Globalization.CultureInfo.InvariantCulture,
                $"The {what} upload of {size} bytes was refused: one client's unfinished chunked uploads may hold at most {_state.Uploads.PerSession} bytes on this server (LocalRayServerOptions.MaxPendingUploadBytesPerSession, rayclient start --max-pending-upload-bytes-per-session). Its chunks were dropped; split the value into several objects or raise the limit."),
            UploadLimit.Server => string.Create(System.Globalization.CultureInfo.InvariantCulture,
                $"The {what} upload of {size} bytes was refused: the unfinished chunked uploads of all clients may hold at most {_state.Uploads.Total} bytes on this server (LocalRayServerOptions.MaxPendingUploadBytes, rayclient start --max-pending-upload-bytes). Its chunks were dropped; try again when other uploads have finished, or raise the limit."),
            _ => string.Create(System.Globalization.CultureInfo.InvariantCulture,
                $"The object is {size / 1e9:0.00} GB; the RayClient embedded server keeps objects in .NET arrays of at most {Array.MaxLength / 1e9:0.00} GB. Split it into several objects, or use a Ray cluster, which has no such limit."),
        };
        var error = ServerErrors.ValueError(message);
        return isPut
            ? new DataResponse { ReqId = request.ReqId, Put = new PutResponse { Valid = false, Error = ByteString.CopyFrom(error) } }
            : new DataResponse { ReqId = request.ReqId, TaskTicket = Ticket.Error(error) };
    }

    private DataResponse ExecutePut(ClientSession session, DataRequest request, AssembledPayload payload)
    {
        // Ray: PutResponse(valid=False, error=<pickled exception>); the stream goes on.
        var entry = _state.Store.TryPut(session, payload.Data, payload.Pooled, out var error);
        return entry is null
            ? new DataResponse { ReqId = request.ReqId, Put = new PutResponse { Valid = false, Error = ByteString.CopyFrom(error) } }
            : new DataResponse { ReqId = request.ReqId, Put = new PutResponse { Id = UnsafeByteOperations.UnsafeWrap(entry.Id.Bytes), Valid = true } };
    }

    private DataResponse ExecuteTask(ClientSession session, DataRequest request, AssembledPayload payload, out TaskSpec? accepted)
    {
        var task = request.Task;
        var response = new DataResponse { ReqId = request.ReqId };
        accepted = null;
        try
        {
            response.TaskTicket = task.Type switch
            {
                ClientTask.Types.RemoteExecType.Function => ScheduleFunction(session, task, payload.Data, out accepted),
                ClientTask.Types.RemoteExecType.Actor => CreateActor(session, task, payload.Data),
                ClientTask.Types.RemoteExecType.Method => CallMethod(session, task, payload.Data),
                ClientTask.Types.RemoteExecType.NamedActor => LookUpNamedActor(session, task),
                _ => Ticket.Error(ServerErrors.Pickle("builtins", "NotImplementedError",
                    $"{task.Type} requests are not supported (Ray's server does not implement them either).")),
            };
        }
        catch (TicketException ex)
        {
            response.TaskTicket = Ticket.Error(ex.ErrorPickle);
        }

        return response;
    }

    private ClientTaskTicket ScheduleFunction(ClientSession session, ClientTask task, ReadOnlyMemory<byte> args, out TaskSpec? accepted)
    {
        accepted = null;
        if (!session.TryGetObject(new RayId(task.PayloadId.ToByteArray()), out var function) || !function.IsReady || function.IsError)
        {
            throw new TicketException(ServerErrors.ValueError($"The function payload {Convert.ToHexStringLower(task.PayloadId.Span)} is not an object of client {session.ClientId}."));
        }

        var spec = _state.Engine.PrepareTask(session, task.Name, function.Id.Hex, function.Data, args, TaskOptionsReader.Read(task.Options?.PickledOptions), parent: null);
        accepted = spec;
        return TicketFor(spec.Returns);
    }

    // ------------------------------------------------------------------------------------------
    // Actors
    // ------------------------------------------------------------------------------------------
    private void Terminate(ClientSession session, TerminateRequest terminate)
    {
        switch (terminate.TerminateTypeCase)
        {
            case TerminateRequest.TerminateTypeOneofCase.Actor:
                _state.Engine.KillActor(new RayId(terminate.Actor.Id.ToByteArray()), terminate.Actor.NoRestart);
                break;
            case TerminateRequest.TerminateTypeOneofCase.TaskObject:
                _state.Engine.Cancel(session, new RayId(terminate.TaskObject.Id.ToByteArray()), terminate.TaskObject.Force, terminate.TaskObject.Recursive);
                break;
            default:
                throw new DatapathProtocolException("A TerminateRequest must name an actor or a task object.");
        }
    }
    private ClientTaskTicket CreateActor(ClientSession session, ClientTask task, ReadOnlyMemory<byte> args)
    {
        if (!session.TryGetObject(new RayId(task.PayloadId.ToByteArray()), out var cls) || !cls.IsReady || cls.IsError)
        {
            throw new TicketException(ServerErrors.ValueError($"The class payload {Convert.ToHexStringLower(task.PayloadId.Span)} is not an object of client {session.ClientId}."));
        }

        var actor = _state.Engine.CreateActor(session, task.Name, cls.Data, args, TaskOptionsReader.Read(task.Options?.PickledOptions));
        return new ClientTaskTicket { Valid = true, ReturnIds = { UnsafeByteOperations.UnsafeWrap(actor.Id.Bytes) } };
    }

    private ClientTaskTicket CallMethod(ClientSession session, ClientTask task, ReadOnlyMemory<byte> args)
    {
        var returns = _state.Engine.CallActorMethod(session, new RayId(task.PayloadId.ToByteArray()), task.Name, args, TaskOptionsReader.Read(task.Options?.PickledOptions).NumReturns);
        return TicketFor(returns);
    }

    /// <summary>A valid ticket naming the work's result objects.</summary>
    private static ClientTaskTicket TicketFor(StoredObject[] returns)
    {
        var ticket = new ClientTaskTicket { Valid = true };
        foreach (var output in returns)
        {
            ticket.ReturnIds.Add(UnsafeByteOperations.UnsafeWrap(output.Id.Bytes));
        }

        return ticket;
    }

    private ClientTaskTicket LookUpNamedActor(ClientSession session, ClientTask task)
    {
        var rayNamespace = string.IsNullOrEmpty(task.Namespace) ? session.Namespace : task.Namespace;
        var actor = _state.Engine.GetNamedActor(session, task.Name, rayNamespace);
        return new ClientTaskTicket { Valid = true, ReturnIds = { UnsafeByteOperations.UnsafeWrap(actor.Id.Bytes) } };
    }

    // ------------------------------------------------------------------------------------------
    // Async gets
    // ------------------------------------------------------------------------------------------
    private void HandleAsyncGet(ClientSession session, DataRequest request, ChannelWriter<DataResponse> output)
    {
        var get = request.Get;
        if (!get.Asynchronous)
        {
            // Ray's server dies on a synchronous get on the Datapath; say what to use instead.
            output.TryWrite(new DataResponse { ReqId = request.ReqId, Get = new GetResponse { Valid = false, Error = ByteString.CopyFrom(ServerErrors.ValueError("Synchronous gets go through the GetObject RPC, not the Datapath.")) } });
            return;
        }

        if (get.Ids.Count != 1)
        {
            throw new DatapathProtocolException($"An asynchronous get must name exactly one object, not {get.Ids.Count}.");
        }

        var id = new RayId(get.Ids[0].ToByteArray());
        if (!session.TryGetObject(id, out var entry))
        {
            output.TryWrite(new DataResponse
            {
                ReqId = request.ReqId,
                Get = new GetResponse { Valid = false, Error = ByteString.CopyFrom(ServerErrors.ValueError($"ClientObjectRef with id {id.Hex} not found for client {session.ClientId}")) },
            });
            return;
        }

        entry.AddReference(); // keep the bytes while they are being sent
        var start = get.StartChunkId;
        entry.OnReady(() => SendObject(request.ReqId, entry, start, output));
    }

    private void SendObject(int reqId, StoredObject entry, int startChunk, ChannelWriter<DataResponse> output)
    {
        try
        {
            // Async-get payloads are the single value; an error travels as a valid value that
            // unpickles to the exception (spec §3.5).
            foreach (var chunk in Chunks(entry.Data, startChunk))
            {
                output.TryWrite(new DataResponse { ReqId = reqId, Get = chunk });
            }
        }
        finally
        {
            _state.Store.Release(entry);
        }
    }

    internal static IEnumerable<GetResponse> Chunks(ReadOnlyMemory<byte> data, int startChunk)
    {
        var total = Math.Max(1, (data.Length + ChunkSize - 1) / ChunkSize);
        for (var i = startChunk; i < total; i++)
        {
            var offset = i * ChunkSize;
            yield return new GetResponse
            {
                Valid = true,
                Data = UnsafeByteOperations.UnsafeWrap(data.Slice(offset, Math.Min(ChunkSize, data.Length - offset))),
                ChunkId = i,
                TotalChunks = total,
                TotalSize = (ulong)data.Length,
            };
        }
    }

    [LoggerMessage(EventId = ServerEventIds.StreamOpened, EventName = nameof(ServerEventIds.StreamOpened), Level = LogLevel.Debug,
        Message = "Datapath stream {Generation} of client {ClientId} opened (reconnecting: {Reconnecting}).")]
    private static partial void LogStreamOpened(ILogger logger, string clientId, int generation, bool reconnecting);

    [LoggerMessage(EventId = ServerEventIds.StreamEnded, EventName = nameof(ServerEventIds.StreamEnded), Level = LogLevel.Debug,
        Message = "Datapath stream {Generation} of client {ClientId} ended (graceful: {Graceful}).")]
    private static partial void LogStreamEnded(ILogger logger, string clientId, int generation, bool graceful);

    [LoggerMessage(EventId = ServerEventIds.StreamFailed, EventName = nameof(ServerEventIds.StreamFailed), Level = LogLevel.Debug,
        Message = "Datapath stream {Generation} of client {ClientId} failed.")]
    private static partial void LogStreamFailed(ILogger logger, string clientId, int generation, Exception exception);

    [LoggerMessage(EventId = ServerEventIds.BadReconnectingMetadata, EventName = nameof(ServerEventIds.BadReconnectingMetadata), Level = LogLevel.Error,
        Message = "The 'reconnecting' metadata is '{Value}', not True/False; treating it as False.")]
    private static partial void LogBadReconnecting(ILogger logger, string value);

    [LoggerMessage(EventId = ServerEventIds.ProtocolError, EventName = nameof(ServerEventIds.ProtocolError), Level = LogLevel.Error,
        Message = "Client {ClientId} broke the protocol: {Reason}")]
    private static partial void LogProtocolError(ILogger logger, string clientId, string reason);

    [LoggerMessage(EventId = ServerEventIds.OldStreamStuck, EventName = nameof(ServerEventIds.OldStreamStuck), Level = LogLevel.Warning,
        Message = "The previous Datapath stream of client {ClientId} did not stop within 10 s; serving the new one anyway.")]
    private static partial void LogOldStreamStuck(ILogger logger, string clientId);
}

/// <summary>
/// Binds <see cref="DataStreamerService.Datapath"/> with the pooled request marshaller instead of
/// the generated one (see <see cref="PooledRequestWire"/>).
/// </summary>
internal sealed class DatapathMethodProvider : Grpc.AspNetCore.Server.Model.IServiceMethodProvider<DataStreamerService>
{
    public void OnServiceMethodDiscovery(Grpc.AspNetCore.Server.Model.ServiceMethodProviderContext<DataStreamerService> context) =>
        context.AddDuplexStreamingMethod(
            PooledRequestWire.ServerDatapath,
            [],
            (service, requests, responses, call) => service.Datapath(requests, responses, call));
}
