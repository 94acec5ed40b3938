using System.Buffers;
using System.Collections.Concurrent;
using System.Reactive.Subjects;
using System.Threading.Channels;
using Google.Protobuf;
using Grpc.Core;
using Microsoft.Extensions.Logging;
using Polly;
using Polly.Retry;
using Polly.Timeout;
using Ray.Rpc;
using RayClient.Serialization;

namespace RayClient.Session;

/// <summary>
/// Owns the session's one Datapath stream: assigns req_ids, chunks puts and tasks, matches
/// responses, acknowledges consumed responses, and, when the stream breaks, resumes it with the
/// same client id within the grace period and replays every request not yet answered
/// (behaviour of Ray's <c>python/ray/util/client/dataclient.py</c>; spec §3 and §4).
/// </summary>
internal sealed partial class DataChannel : IAsyncDisposable
{
    /// <summary>Ray's chunk size for puts, tasks and gets (spec §3.3, <c>OBJECT_TRANSFER_CHUNK_SIZE</c>).</summary>
    public const int ChunkSize = 5 * 1024 * 1024;

    private const int AcknowledgeBatchSize = 32;

    private readonly CallInvoker _invoker;
    private readonly Func<bool, Metadata> _metadata;
    private readonly Func<CancellationToken, Task> _ping;
    private readonly TimeSpan _grace;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly Channel<object> _outbound = Channel.CreateUnbounded<object>();
    private readonly ConcurrentDictionary<int, PendingRequest> _pending = new();
    private readonly BehaviorSubject<RayConnectionState> _state;
    private readonly CancellationTokenSource _shutdown = new();
    private readonly object _ackLock = new();
    private readonly SortedSet<int> _completedAhead = [];
    private int _nextReqId;
    private int _ackWatermark;
    private int _completionsSinceAck;
    private Task? _supervisor;
    private Exception? _fatal;
    private volatile bool _closing;
    private long _reconnects;

    public DataChannel(
        CallInvoker invoker,
        Func<bool, Metadata> metadata,
        Func<CancellationToken, Task> ping,
        TimeSpan grace,
        TimeProvider time,
        ILogger logger)
    {
        _invoker = invoker;
        _metadata = metadata;
        _ping = ping;
        _grace = grace;
        _time = time;
        _logger = logger;
        _state = new BehaviorSubject<RayConnectionState>(new RayConnectionState(RayConnectionStatus.Connecting, time.GetUtcNow()));
    }

    public IObservable<RayConnectionState> States => _state;

    public RayConnectionState CurrentState => _state.Value;

    /// <summary>Number of times the stream was resumed after a break.</summary>
    public long Reconnects => Interlocked.Read(ref _reconnects);

    /// <summary>The error that ended the session, if it is lost.</summary>
    public Exception? Fatal => Volatile.Read(ref _fatal);

    public void Start()
    {
        _supervisor = Task.Run(SuperviseAsync);
    }

    /// <summary>Queues a tracked request; the task completes with its response.</summary>
    public Task<DataResponse> SendAsync(DataRequest request, PickledData? payload = null)
    {
        var pending = new PendingCall(request, payload);
        Enqueue(pending);
        return pending.Completion;
    }

    /// <summary>Queues a tracked request and returns its record (for callers that need to cancel it).</summary>
    public T Enqueue<T>(T pending)
        where T : PendingRequest
    {
        ThrowIfUnusable();
        if (!_outbound.Writer.TryWrite(pending))
        {
            pending.TrySetException(Unusable());
        }

        return pending;
    }

    /// <summary>Stops waiting for a request (caller timeout or cancellation); a late answer is ignored.</summary>
    public void Abandon(PendingRequest pending, Exception reason)
    {
        if (pending.TrySetException(reason) && pending.ReqId != 0 && _pending.TryRemove(pending.ReqId, out _))
        {
            OnConsumed(pending.ReqId);
        }
    }

    /// <summary>Throws the session-lost error when the session can no longer be used.</summary>
    public void ThrowIfUnusable()
    {
        if (_fatal is not null || _closing)
        {
            throw Unusable();
        }
    }

    private Exception Unusable() => _fatal is { } fatal
        ? fatal is RayException ? fatal : new RaySessionLostException(fatal.Message, _time.GetUtcNow(), fatal)
        : new ObjectDisposedException(nameof(RaySession), "The Ray session was closed.");

    // ------------------------------------------------------------------------------------------
    // Supervisor: one connection generation at a time.
    // ------------------------------------------------------------------------------------------
    private async Task SuperviseAsync()
    {
        var reconnecting = false;
        DateTimeOffset? outageSince = null;
        while (!_shutdown.IsCancellationRequested)
        {
            using var generation = CancellationTokenSource.CreateLinkedTokenSource(_shutdown.Token);
            AsyncDuplexStreamingCall<DataRequest, DataResponse>? call = null;
            Exception? failure = null;
            try
            {
                call = _invoker.AsyncDuplexStreamingCall(PooledWire.ClientDatapath, host: null, new CallOptions(headers: _metadata(reconnecting), cancellationToken: generation.Token).WithWaitForReady());
                var writer = WriteLoopAsync(call.RequestStream, replay: reconnecting, generation.Token);
                var reader = ReadLoopAsync(call.ResponseStream, generation.Token, () =>
                {
                    // First response on a resumed stream: the server accepted the session.
                    if (outageSince is { } since)
                    {
                        LogReconnected(_logger, _time.GetUtcNow() - since);
                        Publish(new RayConnectionState(RayConnectionStatus.Reconnected, _time.GetUtcNow(), Since: since));
                        Publish(new RayConnectionState(RayConnectionStatus.Connected, _time.GetUtcNow()));
                        outageSince = null;
                    }
                });
                if (!reconnecting)
                {
                    Publish(new RayConnectionState(RayConnectionStatus.Connected, _time.GetUtcNow()));
                }

                var first = await Task.WhenAny(writer, reader).ConfigureAwait(false);
                await first.ConfigureAwait(false); // surfaces the failure, if any
                if (first == writer)
                {
                    // Writer finished: closing gracefully. Wait for the server to end the stream.
                    await reader.ConfigureAwait(false);
                    return;
                }

                // The server ended the stream without an error while we still use it.
                throw new RayConnectionException("The server ended the Datapath stream.", isTransient: true);
            }
            catch (Exception ex)
            {
                failure = ex;
            }
            finally
            {
                await generation.CancelAsync().ConfigureAwait(false);
                call?.Dispose();
            }

            if (_closing)
            {
                return;
            }

            outageSince ??= _time.GetUtcNow();
            if (_grace <= TimeSpan.Zero || !IsRecoverable(failure))
            {
                Fail(CreateLostException(failure, outageSince.Value, recoverable: IsRecoverable(failure)));
                return;
            }

            LogStreamBroken(_logger, failure.Message);
            if (!await WaitForServerAsync(outageSince.Value, failure).ConfigureAwait(false))
            {
                return;
            }

            reconnecting = true;
            Interlocked.Increment(ref _reconnects);
        }
    }

    /// <summary>
    /// Retries a ping with jittered backoff until the server answers, for at most the grace
    /// period counted from the start of the outage (a Polly timeout around a Polly retry).
    /// </summary>
    private async Task<bool> WaitForServerAsync(DateTimeOffset outageSince, Exception failure)
    {
        var remaining = _grace - (_time.GetUtcNow() - outageSince);
        if (remaining <= TimeSpan.Zero)
        {
            Fail(CreateLostException(failure, outageSince, recoverable: true));
            return false;
        }

        var attempt = 0;
        var pipeline = new ResiliencePipelineBuilder { TimeProvider = _time }
            .AddTimeout(remaining)
            .AddRetry(new RetryStrategyOptions
            {
                ShouldHandle = new PredicateBuilder().Handle<Exception>(ex => ex is not OperationCanceledException || !_shutdown.IsCancellationRequested),
                MaxRetryAttempts = int.MaxValue,
                BackoffType = DelayBackoffType.Exponential,
                UseJitter = true,
                Delay = TimeSpan.FromMilliseconds(50),
                MaxDelay = TimeSpan.FromSeconds(1),
                OnRetry = args =>
                {
                    LogReconnectAttemptFailed(_logger, args.AttemptNumber + 1, args.Outcome.Exception?.Message);
                    return default;
                },
            })
            .Build();
        try
        {
            await pipeline.ExecuteAsync(
                async token =>
                {
                    attempt++;
                    Publish(new RayConnectionState(RayConnectionStatus.Reconnecting, _time.GetUtcNow(), attempt, outageSince, failure.Message));
                    using var attemptCts = CancellationTokenSource.CreateLinkedTokenSource(token);
                    attemptCts.CancelAfter(TimeSpan.FromSeconds(5));
                    await _ping(attemptCts.Token).ConfigureAwait(false);
                },
                _shutdown.Token).ConfigureAwait(false);
            return true;
        }
        catch (TimeoutRejectedException)
        {
            Fail(CreateLostException(failure, outageSince, recoverable: true));
            return false;
        }
        catch (OperationCanceledException) when (_shutdown.IsCancellationRequested)
        {
            return false;
        }
        catch (Exception ex)
        {
            Fail(CreateLostException(ex, outageSince, recoverable: false));
            return false;
        }
    }

    private RaySessionLostException CreateLostException(Exception? failure, DateTimeOffset since, bool recoverable)
    {
        var now = _time.GetUtcNow();
        string message;
        if (failure is RpcException { StatusCode: StatusCode.NotFound } notFound)
        {
            message = $"The Ray session was lost at {now:O}: the server no longer knows this session ({notFound.Status.Detail}). " +
                      "It was restarted or cleaned the session up after the grace period. Open a new session; every ObjectRef and actor handle of the old one is invalid.";
        }
        else if (_grace <= TimeSpan.Zero && recoverable)
        {
            message = $"The Ray session was lost at {now:O}: the connection broke ({failure?.Message}) and reconnects are disabled (grace period 0).";
        }
        else if (recoverable)
        {
            message = $"The Ray session was lost at {now:O}: the connection broke at {since:O} ({failure?.Message}) and could not be resumed within the reconnect grace period of {_grace.TotalSeconds:0.#} s. " +
                      "Every ObjectRef and actor handle of this session is invalid; open a new session.";
        }
        else
        {
            message = $"The Ray session was lost at {now:O}: the server ended it with an unrecoverable error ({failure?.Message}).";
        }

        return new RaySessionLostException(message, now, failure);
    }

    private void Fail(Exception fatal)
    {
        if (Interlocked.CompareExchange(ref _fatal, fatal, null) is not null)
        {
            return;
        }

        LogSessionLost(_logger, fatal.Message);
        Publish(new RayConnectionState(RayConnectionStatus.Lost, _time.GetUtcNow(), Reason: fatal.Message));
        _outbound.Writer.TryComplete();
        foreach (var pending in _pending.Values)
        {
            pending.TrySetException(fatal);
        }

        _pending.Clear();
        while (_outbound.Reader.TryRead(out var item))
        {
            (item as PendingRequest)?.TrySetException(fatal);
        }

    }

    /// <summary>Which stream failures may be resumed (Ray: <c>worker.py :: _can_reconnect</c>, spec §4.2).</summary>
    internal static bool IsRecoverable(Exception? error) => error switch
    {
        RpcException rpc => rpc.StatusCode switch
        {
            StatusCode.ResourceExhausted or StatusCode.InvalidArgument or StatusCode.NotFound
                or StatusCode.FailedPrecondition or StatusCode.Aborted or StatusCode.Unauthenticated
                or StatusCode.PermissionDenied or StatusCode.Unimplemented => false,
            StatusCode.Internal when rpc.Status.Detail == "Exception serializing request!" => false,
            _ => true,
        },
        RayConnectionException connection => connection.IsTransient,
        IOException or HttpRequestException or ObjectDisposedException => true,
        _ => false,
    };

    // ------------------------------------------------------------------------------------------
    // Writing
    // ------------------------------------------------------------------------------------------
    private async Task WriteLoopAsync(IClientStreamWriter<DataRequest> stream, bool replay, CancellationToken cancellationToken)
    {
        if (replay)
        {
            // Re-send, in req_id order, everything the server may not have answered (spec §3.8).
            var outstanding = _pending.Values.Where(p => !p.IsCompleted).OrderBy(p => p.ReqId).ToList();
            for (var i = 0; i < outstanding.Count; i++)
            {
                await WriteRequestAsync(stream, outstanding[i], moreQueued: i + 1 < outstanding.Count, cancellationToken).ConfigureAwait(false);
            }
        }

        // Take what is queued as one batch, drop what was abandoned meanwhile, and flush with the
        // batch's last write: a write is buffered only when a write certainly follows it, so a
        // request never waits unflushed behind one that was abandoned before it was sent.
        var reader = _outbound.Reader;
        var batch = new List<object>(MaxWriteBatch);
        while (await reader.WaitToReadAsync(cancellationToken).ConfigureAwait(false))
        {
            batch.Clear();
            while (batch.Count < MaxWriteBatch && reader.TryRead(out var item))
            {
                if (item is PendingRequest pending)
                {
                    if (pending.IsCompleted)
                    {
                        continue; // abandoned before it was sent
                    }

                    if (pending.ReqId == 0)
                    {
                        // Tracked from here on: if the stream breaks before it is written, the
                        // replay of the next stream sends it with the others, in req_id order.
                        pending.Request.ReqId = NextReqId();
                        _pending[pending.ReqId] = pending;
                    }
                }

                batch.Add(item);
            }

            for (var i = 0; i < batch.Count; i++)
            {
                var moreQueued = i + 1 < batch.Count;
                switch (batch[i])
                {
                    case PendingRequest pending:
                        await WriteRequestAsync(stream, pending, moreQueued, cancellationToken).ConfigureAwait(false);
                        break;
                    case DataRequest untracked:
                        stream.WriteOptions = moreQueued ? BufferHint : null;
                        await stream.WriteAsync(untracked, cancellationToken).ConfigureAwait(false);
                        if (untracked.TypeCase == DataRequest.TypeOneofCase.ConnectionCleanup)
                        {
                            // Graceful close: nothing follows the cleanup request.
                            await stream.CompleteAsync().ConfigureAwait(false);
                            return;
                        }

                        break;
                }
            }
        }
    }

    /// <summary>Requests written per flush at most, under load.</summary>
    private const int MaxWriteBatch = 64;

    private static readonly WriteOptions BufferHint = new(WriteFlags.BufferHint);

    private static async Task WriteRequestAsync(IClientStreamWriter<DataRequest> stream, PendingRequest pending, bool moreQueued, CancellationToken cancellationToken)
    {
        var request = pending.Request;
        if (pending.Payload is not { } payload)
        {
            stream.WriteOptions = moreQueued ? BufferHint : null;
            await stream.WriteAsync(request, cancellationToken).ConfigureAwait(false);
            return;
        }

        // Chunk lazily, at send time, so a request's chunks are contiguous on the wire (spec §3.3);
        // chunk_id/total_chunks are set even for a single chunk.
        var sequence = payload.AsSequence();
        var total = sequence.Length;
        var chunks = (int)Math.Max(1, (total + ChunkSize - 1) / ChunkSize);
        for (var i = 0; i < chunks; i++)
        {
            var slice = sequence.Slice((long)i * ChunkSize, Math.Min(ChunkSize, total - ((long)i * ChunkSize)));
            byte[]? rented = null;
            ByteString data;
            if (slice.IsSingleSegment)
            {
                data = UnsafeByteOperations.UnsafeWrap(slice.First);
            }
            else
            {
                rented = ArrayPool<byte>.Shared.Rent((int)slice.Length);
                slice.CopyTo(rented);
                data = UnsafeByteOperations.UnsafeWrap(rented.AsMemory(0, (int)slice.Length));
            }

            try
            {
                var chunk = new DataRequest { ReqId = request.ReqId };
                if (request.TypeCase == DataRequest.TypeOneofCase.Put)
                {
                    var put = request.Put;
                    chunk.Put = new PutRequest
                    {
                        ClientRefId = put.ClientRefId,
                        OwnerId = put.OwnerId,
                        TotalSize = total,
                        TotalChunks = chunks,
                        ChunkId = i,
                        Data = data,
                    };
                }
                else
                {
                    var task = request.Task.Clone();
                    task.Data = data;
                    task.ChunkId = i;
                    task.TotalChunks = chunks;
                    chunk.Task = task;
                }

                stream.WriteOptions = moreQueued || i + 1 < chunks ? BufferHint : null;
                await stream.WriteAsync(chunk, cancellationToken).ConfigureAwait(false);
            }
            finally
            {
                if (rented is not null)
                {
                    ArrayPool<byte>.Shared.Return(rented);
                }
            }
        }
    }

    private int NextReqId()
    {
        // 1 … int.MaxValue, then 1 again; 0 is reserved for untracked messages (spec §3.1).
        var id = ++_nextReqId;
        if (id <= 0)
        {
            _nextReqId = 1;
            id = 1;
        }

        return id;
    }

    // ------------------------------------------------------------------------------------------
    // Reading
    // ------------------------------------------------------------------------------------------
    private async Task ReadLoopAsync(IAsyncStreamReader<DataResponse> stream, CancellationToken cancellationToken, Action onFirstResponse)
    {
        var first = true;
        while (await stream.MoveNext(cancellationToken).ConfigureAwait(false))
        {
            var response = stream.Current;
            if (first)
            {
                first = false;
                onFirstResponse();
            }

            if (response.ReqId == 0)
            {
                continue; // the cleanup answer, or a synthetic message: nothing waits for it
            }

            if (!_pending.TryGetValue(response.ReqId, out var pending))
            {
                continue; // answer to an abandoned request, or a duplicate after a replay
            }

            Deliver(pending, response);
        }
    }

    /// <summary>Hands one response to its request: a chunk to an async get, the answer to any other request.</summary>
    private void Deliver(PendingRequest pending, DataResponse response)
    {
        if (pending is PendingGet get)
        {
            if (response.TypeCase != DataResponse.TypeOneofCase.Get)
            {
                Fail(pending, new RayConnectionException($"The server answered a Get request with {response.TypeCase}.", isTransient: false));
                return;
            }

            ReceivedObject? whole;
            try
            {
                whole = get.AddGetChunk(response.Get);
            }
            catch (RayException ex)
            {
                // This object cannot be received; the rest of the stream is fine.
                Fail(pending, ex);
                return;
            }

            if (whole is not null)
            {
                _pending.TryRemove(pending.ReqId, out _);
                get.TrySetResult(whole);
                OnConsumed(pending.ReqId);
            }

            return;
        }

        var call = (PendingCall)pending;
        if (pending.Request.TypeCase is DataRequest.TypeOneofCase.Put or DataRequest.TypeOneofCase.Task
            && response.TypeCase is not (DataResponse.TypeOneofCase.Put or DataResponse.TypeOneofCase.TaskTicket))
        {
            Fail(pending, new RayConnectionException($"The server answered a {pending.Request.TypeCase} request with {response.TypeCase}.", isTransient: false));
            return;
        }

        _pending.TryRemove(pending.ReqId, out _);
        call.TrySetResult(response);
        OnConsumed(pending.ReqId);
    }

    private void Fail(PendingRequest pending, Exception error)
    {
        _pending.TryRemove(pending.ReqId, out _);
        pending.TrySetException(error);
        OnConsumed(pending.ReqId);
    }

    /// <summary>
    /// Acknowledges with a contiguous watermark (every id up to it consumed), every 32 consumed
    /// responses; Ray acknowledges "the 32nd id", which can purge an unconsumed entry (spec §3.6, §12.6).
    /// </summary>
    private void OnConsumed(int reqId)
    {
        if (_grace <= TimeSpan.Zero || reqId <= 0)
        {
            return;
        }

        int watermark;
        lock (_ackLock)
        {
            if (reqId == _ackWatermark + 1)
            {
                _ackWatermark = reqId;
                while (_completedAhead.Count > 0 && _completedAhead.Min == _ackWatermark + 1)
                {
                    _ackWatermark = _completedAhead.Min;
                    _completedAhead.Remove(_ackWatermark);
                }
            }
            else if (reqId > _ackWatermark)
            {
                _completedAhead.Add(reqId);
            }

            if (++_completionsSinceAck < AcknowledgeBatchSize)
            {
                return;
            }

            _completionsSinceAck = 0;
            watermark = _ackWatermark;
        }

        if (watermark > 0)
        {
            _outbound.Writer.TryWrite(new DataRequest { Acknowledge = new AcknowledgeRequest { ReqId = watermark } });
        }
    }

    private void Publish(RayConnectionState state)
    {
        if (_state.Value.Status is RayConnectionStatus.Lost or RayConnectionStatus.Closed)
        {
            return;
        }

        _state.OnNext(state);
    }

    // ------------------------------------------------------------------------------------------
    // Shutdown
    // ------------------------------------------------------------------------------------------

    /// <summary>
    /// Graceful close (spec §4.6): sends ConnectionCleanup, half-closes, waits for the server to
    /// end the stream, then fails whatever is still pending.
    /// </summary>
    public async ValueTask DisposeAsync()
    {
        if (_closing)
        {
            return;
        }

        if (_fatal is null && _supervisor is not null)
        {
            _outbound.Writer.TryWrite(new DataRequest { ConnectionCleanup = new ConnectionCleanupRequest() });
            try
            {
                await _supervisor.WaitAsync(TimeSpan.FromSeconds(5)).ConfigureAwait(false);
            }
            catch (TimeoutException)
            {
                LogCloseTimedOut(_logger);
            }
            catch (Exception ex) when (ex is not OutOfMemoryException)
            {
                LogCloseFailed(_logger, ex.Message);
            }
        }

        _closing = true;
        _outbound.Writer.TryComplete();
        await _shutdown.CancelAsync().ConfigureAwait(false);
        var closed = new ObjectDisposedException(nameof(RaySession), "The Ray session was closed.");
        foreach (var pending in _pending.Values)
        {
            pending.TrySetException(closed);
        }

        while (_outbound.Reader.TryRead(out var item))
        {
            (item as PendingRequest)?.TrySetException(closed);
        }

        if (_supervisor is not null)
        {
            try
            {
                await _supervisor.ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is not OutOfMemoryException)
            {
                LogCloseFailed(_logger, ex.Message);
            }
        }

        if (_state.Value.Status != RayConnectionStatus.Lost)
        {
            _state.OnNext(new RayConnectionState(RayConnectionStatus.Closed, _time.GetUtcNow()));
        }

        _state.OnCompleted();
        _shutdown.Dispose();
    }

    [LoggerMessage(EventId = RayEventIds.DatapathBroken, EventName = nameof(RayEventIds.DatapathBroken), Level = LogLevel.Warning,
        Message = "The Datapath stream broke ({Reason}); resuming the session within the grace period.")]
    private static partial void LogStreamBroken(ILogger logger, string reason);

    [LoggerMessage(EventId = RayEventIds.ReconnectAttemptFailed, EventName = nameof(RayEventIds.ReconnectAttemptFailed), Level = LogLevel.Debug,
        Message = "Reconnect attempt {Attempt} failed ({Reason}); retrying within the grace period.")]
    private static partial void LogReconnectAttemptFailed(ILogger logger, int attempt, string? reason);

    [LoggerMessage(EventId = RayEventIds.DatapathResumed, EventName = nameof(RayEventIds.DatapathResumed), Level = LogLevel.Information,
        Message = "The session was resumed after {Outage}.")]
    private static partial void LogReconnected(ILogger logger, TimeSpan outage);

    [LoggerMessage(EventId = RayEventIds.SessionLost, EventName = nameof(RayEventIds.SessionLost), Level = LogLevel.Error,
        Message = "{Reason}")]
    private static partial void LogSessionLost(ILogger logger, string reason);

    [LoggerMessage(EventId = RayEventIds.CloseTimedOut, EventName = nameof(RayEventIds.CloseTimedOut), Level = LogLevel.Warning,
        Message = "The server did not end the Datapath stream within 5 s of the cleanup request.")]
    private static partial void LogCloseTimedOut(ILogger logger);

    [LoggerMessage(EventId = RayEventIds.CloseFailed, EventName = nameof(RayEventIds.CloseFailed), Level = LogLevel.Debug,
        Message = "Closing the Datapath stream failed: {Reason}")]
    private static partial void LogCloseFailed(ILogger logger, string reason);
}
