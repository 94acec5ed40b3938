using System.Buffers;
using Google.Protobuf;
using RayClient.Server.Protocol;
using RayClient.Server.Storage;
using RayClient.Server.Workers;

namespace RayClient.Server;

/// <summary>
/// Server-side state of one client (one Ray job): the objects it holds, its runtime env, its
/// response cache and chunk collectors. Survives broken streams for the grace period.
/// </summary>
internal sealed class ClientSession
{
    private readonly Lock _lock = new();
    private readonly Dictionary<RayId, StoredObject> _objects = [];

    private int _streamGeneration;
    private StreamHandle? _activeStream;
    private CancellationTokenSource? _pendingCleanup;

    public ClientSession(string clientId, byte[] jobId, UploadBudget? uploads = null, int graceSeconds = 0)
    {
        ClientId = clientId;
        JobId = jobId;
        GraceSeconds = graceSeconds;
        var account = (uploads ?? UploadBudget.Unlimited).OpenAccount();
        PutChunks = new ChunkCollector(Array.MaxLength, account);
        TaskChunks = new ChunkCollector(Array.MaxLength, account);
    }

    public string ClientId { get; }

    public byte[] JobId { get; }

    public bool Initialized { get; private set; }

    public string Namespace { get; private set; } = string.Empty;

    public string RuntimeEnvJson { get; private set; } = "{}";

    public IReadOnlyDictionary<string, object?> RuntimeEnv { get; private set; } = new Dictionary<string, object?>();

    public WorkerEnvironment Environment { get; private set; } = WorkerEnvironment.Default;

    /// <summary>Seconds the session survives a broken stream; 0 = clean up at once, no response cache.</summary>
    public int GraceSeconds { get; private set; }

    public bool IsClosed { get; private set; }

    public ResponseCache Cache { get; } = new();

    public ChunkCollector PutChunks { get; }

    public ChunkCollector TaskChunks { get; }

    /// <summary>How many Datapath streams this client opened; a stream only cleans up if it is the newest.</summary>
    public int StreamGeneration => Volatile.Read(ref _streamGeneration);

    /// <summary>
    /// Applies an Init (or a job driver's registration): the job's namespace, runtime env and the
    /// worker environment resolved from it. <paramref name="graceSeconds"/> null keeps the current one.
    /// </summary>
    public void Initialize(string rayNamespace, IReadOnlyDictionary<string, object?> runtimeEnv, string runtimeEnvJson, WorkerEnvironment environment, int? graceSeconds = null)
    {
        if (graceSeconds is { } grace)
        {
            GraceSeconds = grace;
        }

        Namespace = rayNamespace;
        RuntimeEnv = runtimeEnv;
        RuntimeEnvJson = runtimeEnvJson;
        Environment = environment;
        Initialized = true;
    }

    /// <summary>Sets the grace period before the Init that asked for it has finished (a reconnect may come meanwhile).</summary>
    public void SetGraceSeconds(int graceSeconds) => GraceSeconds = graceSeconds;

    /// <summary>
    /// A Datapath stream of this client opened: a cleanup waiting for the client's return is
    /// called off. Returns the stream's generation.
    /// </summary>
    public int BeginStream()
    {
        Interlocked.Exchange(ref _pendingCleanup, null)?.Cancel();
        return Interlocked.Increment(ref _streamGeneration);
    }

    /// <summary>True while no newer stream than <paramref name="generation"/> has opened.</summary>
    public bool IsNewestStream(int generation) => generation == Volatile.Read(ref _streamGeneration);

    /// <summary>Makes <paramref name="handle"/> the stream serving this client; returns the one it replaces.</summary>
    public StreamHandle? TakeOverStream(StreamHandle handle) => Interlocked.Exchange(ref _activeStream, handle);

    /// <summary>The stream of <paramref name="handle"/> ended: it no longer serves this client (unless a newer one took over already).</summary>
    public void EndStream(StreamHandle handle) => Interlocked.CompareExchange(ref _activeStream, null, handle);

    /// <summary>
    /// Waits for the client's return: <paramref name="cleanup"/> is cancelled when a stream opens
    /// (<see cref="BeginStream"/>) or the server stops (<see cref="CancelPendingCleanup"/>).
    /// </summary>
    public void AwaitReconnect(CancellationTokenSource cleanup) => Interlocked.Exchange(ref _pendingCleanup, cleanup)?.Cancel();

    /// <summary>Calls off a cleanup waiting for the client's return.</summary>
    public void CancelPendingCleanup() => Interlocked.Exchange(ref _pendingCleanup, null)?.Cancel();

    public int HeldObjects
    {
        get
        {
            lock (_lock)
            {
                return _objects.Count;
            }
        }
    }

    public void Hold(StoredObject entry)
    {
        lock (_lock)
        {
            if (!IsClosed && _objects.TryAdd(entry.Id, entry))
            {
                entry.AddReference();
            }
        }
    }

    public bool TryGetObject(RayId id, out StoredObject entry)
    {
        lock (_lock)
        {
            return _objects.TryGetValue(id, out entry!);
        }
    }

    public bool Release(RayId id, ObjectStore store)
    {
        StoredObject? entry;
        lock (_lock)
        {
            if (!_objects.Remove(id, out entry))
            {
                return false;
            }
        }

        store.Release(entry);
        return true;
    }

    /// <summary>Ends the job: drops every object it holds; its queued tasks will not run.</summary>
    public void Close(ObjectStore store)
    {
        List<StoredObject> entries;
        lock (_lock)
        {
            if (IsClosed)
            {
                return;
            }

            IsClosed = true;
            entries = [.. _objects.Values];
            _objects.Clear();
        }

        foreach (var entry in entries)
        {
            store.Release(entry);
        }

        PutChunks.Reset();
        TaskChunks.Reset();
        Cache.Clear();
    }
}

/// <summary>
/// The per-client response cache of Ray's data servicer (spec §3.6): a replayed request that was
/// already executed is answered from here instead of running again; acknowledgements trim it.
/// </summary>
internal sealed class ResponseCache
{
    private readonly Lock _lock = new();
    private readonly Dictionary<int, TaskCompletionSource<DataResponse>> _entries = [];
    private int _lastAcknowledged;

    public int Count
    {
        get
        {
            lock (_lock)
            {
                return _entries.Count;
            }
        }
    }

    /// <summary>
    /// Looks <paramref name="reqId"/> up. Returns a task with the earlier response when it was
    /// already executed (or is executing); null when the caller must execute it now.
    /// </summary>
    /// <exception cref="DatapathProtocolException">The id was acknowledged and purged: a replay cannot be answered.</exception>
    public Task<DataResponse>? TryBegin(int reqId)
    {
        lock (_lock)
        {
            if (_entries.TryGetValue(reqId, out var existing))
            {
                return existing.Task;
            }

            if (reqId <= _lastAcknowledged)
            {
                throw new DatapathProtocolException(
                    $"Attempting to access a cache entry that has already been cleaned up (req_id {reqId} <= acknowledged {_lastAcknowledged}).");
            }

            _entries[reqId] = new TaskCompletionSource<DataResponse>(TaskCreationOptions.RunContinuationsAsynchronously);
            return null;
        }
    }

    /// <summary>The earlier response for <paramref name="reqId"/>, without reserving the id.</summary>
    public Task<DataResponse>? Peek(int reqId)
    {
        lock (_lock)
        {
            return _entries.TryGetValue(reqId, out var existing) ? existing.Task : null;
        }
    }

    /// <summary>Records a response that was produced without <see cref="TryBegin"/>.</summary>
    public void Store(int reqId, DataResponse response)
    {
        lock (_lock)
        {
            if (reqId <= _lastAcknowledged)
            {
                return;
            }

            var entry = new TaskCompletionSource<DataResponse>(TaskCreationOptions.RunContinuationsAsynchronously);
            entry.TrySetResult(response);
            _entries[reqId] = entry;
        }
    }

    public void Complete(int reqId, DataResponse response)
    {
        lock (_lock)
        {
            if (_entries.TryGetValue(reqId, out var entry))
            {
                entry.TrySetResult(response);
            }
        }
    }

    /// <summary>Drops an unfinished placeholder (its execution failed) so a replay executes it again.</summary>
    public void Abandon(int reqId)
    {
        lock (_lock)
        {
            if (_entries.TryGetValue(reqId, out var entry) && !entry.Task.IsCompleted)
            {
                _entries.Remove(reqId);
                entry.TrySetCanceled();
            }
        }
    }

    public void Acknowledge(int reqId)
    {
        lock (_lock)
        {
            if (reqId <= _lastAcknowledged)
            {
                return;
            }

            _lastAcknowledged = reqId;
            List<int>? remove = null;
            foreach (var key in _entries.Keys)
            {
                if (key <= reqId && _entries[key].Task.IsCompleted)
                {
                    (remove ??= []).Add(key);
                }
            }

            foreach (var key in remove ?? [])
            {
                _entries.Remove(key);
            }
        }
    }

    public void Clear()
    {
        lock (_lock)
        {
            foreach (var entry in _entries.Values)
            {
                entry.TrySetCanceled();
            }

            _entries.Clear();
        }
    }
}

/// <summary>
/// Reassembles a chunked put or task (spec §3.3): chunks of one req_id in order; repeats from a
/// replay are skipped; a replay that starts over at chunk 0 restarts the collection.
/// </summary>
internal sealed class ChunkCollector(long maxSize, UploadAccount? account = null)
{
    private readonly List<(ByteString Data, byte[]? Rented)> _chunks = [];
    private readonly UploadAccount _account = account ?? UploadBudget.Unlimited.OpenAccount();
    private int _reqId = -1;
    private int _next;
    private long _size;
    private long _held;
    private bool _tooLarge;
    private UploadLimit _limit;

    /// <summary>A collector for payloads up to the longest .NET array (the embedded server keeps objects in arrays).</summary>
    public ChunkCollector() : this(Array.MaxLength)
    {
    }

    /// <summary>Bytes of unfinished uploads this collector holds now.</summary>
    public long HeldBytes => _held;

    /// <summary>Adds a chunk whose bytes are not pooled.</summary>
    public AssembledPayload? Add(int reqId, int chunkId, int totalChunks, ByteString data) =>
        Add(reqId, chunkId, totalChunks, data, rented: null);

    /// <summary>
    /// Adds a chunk; <paramref name="rented"/> is the pooled buffer behind it, owned by the collector
    /// from now on. A payload larger than the collector's limit (by <paramref name="declaredSize"/>
    /// or by what arrives) is dropped chunk by chunk and reported once its last chunk arrived.
    /// </summary>
    /// <returns>The whole payload (and the pooled buffer that holds it, if any) once complete.</returns>
    public AssembledPayload? Add(int reqId, int chunkId, int totalChunks, ByteString data, byte[]? rented, long declaredSize = 0)
    {
        if (totalChunks <= 0)
        {
            Return(rented);
            throw new DatapathProtocolException($"Request {reqId} has total_chunks={totalChunks}; Ray clients always set chunk_id and total_chunks, even for one chunk.");
        }

        if (reqId != _reqId)
        {
            if (chunkId != 0)
            {
                Return(rented);
                throw new DatapathProtocolException($"Expected chunk 0 of request {reqId}, got chunk {chunkId} (while collecting request {_reqId}).");
            }

            Reset();
            _reqId = reqId;
        }
        else if (chunkId < _next)
        {
            if (chunkId == 0)
            {
                Reset(); // a replay re-sends the whole request from chunk 0
                _reqId = reqId;
            }
            else
            {
                Return(rented);
                return null;
            }
        }
        else if (chunkId > _next)
        {
            Return(rented);
            throw new DatapathProtocolException($"Chunk {chunkId} of request {reqId} arrived before chunk {_next}: chunks received out of order.");
        }

        _size += data.Length;
        if (!_tooLarge)
        {
            var limit = _size > maxSize || declaredSize > maxSize ? UploadLimit.ObjectSize
                : declaredSize > _account.Budget.PerSession ? UploadLimit.Session
                : _account.TryTake(data.Length);
            if (limit == UploadLimit.None)
            {
                _held += data.Length;
            }
            else
            {
                // Refused: what was kept goes back at once; later chunks of this request are dropped as they come.
                _tooLarge = true;
                _limit = limit;
                ReturnChunks();
            }
        }

        if (_tooLarge)
        {
            Return(rented);
        }
        else
        {
            _chunks.Add((data, rented));
        }

        _next = chunkId + 1;
        if (_next < totalChunks)
        {
            return null;
        }

        AssembledPayload result;
        if (_tooLarge)
        {
            result = new AssembledPayload(default, null, Math.Max(_size, declaredSize), _limit);
        }
        else if (_chunks.Count == 1)
        {
            result = new AssembledPayload(_chunks[0].Data.Memory, _chunks[0].Rented);
            _chunks.Clear();
        }
        else
        {
            var size = (int)_size;
            var buffer = ArrayPool<byte>.Shared.Rent(size);
            var offset = 0;
            foreach (var chunk in _chunks)
            {
                chunk.Data.Span.CopyTo(buffer.AsSpan(offset));
                offset += chunk.Data.Length;
            }

            result = new AssembledPayload(buffer.AsMemory(0, size), buffer);
        }

        Reset();
        return result;
    }

    public void Reset()
    {
        ReturnChunks();
        _reqId = -1;
        _next = 0;
        _size = 0;
        _tooLarge = false;
        _limit = UploadLimit.None;
    }

    /// <summary>Drops the kept chunks (returning pooled buffers) and gives their bytes back to the budget.</summary>
    private void ReturnChunks()
    {
        foreach (var chunk in _chunks)
        {
            Return(chunk.Rented);
        }

        _chunks.Clear();
        _account.Give(_held);
        _held = 0;
    }

    private static void Return(byte[]? rented)
    {
        if (rented is not null)
        {
            ArrayPool<byte>.Shared.Return(rented);
        }
    }
}

/// <summary>
/// A reassembled put or task payload, or, when <see cref="TooLargeSize"/> is set, the size of one
/// that was too large to keep (its bytes were dropped as they came).
/// </summary>
internal readonly record struct AssembledPayload(ReadOnlyMemory<byte> Data, byte[]? Pooled, long TooLargeSize = 0, UploadLimit Limit = UploadLimit.None);

/// <summary>Which limit refused an upload.</summary>
internal enum UploadLimit
{
    None,

    /// <summary>Larger than one object can be (a .NET array).</summary>
    ObjectSize,

    /// <summary>The client's unfinished uploads would hold more than its share.</summary>
    Session,

    /// <summary>All clients' unfinished uploads would hold more than the server allows.</summary>
    Server,
}

/// <summary>
/// Bytes held by unfinished chunked uploads, server-wide and per client: a client that starts
/// uploads and never finishes them (or many clients doing so) cannot fill the server's memory.
/// </summary>
internal sealed class UploadBudget(long total, long perSession)
{
    private long _held;

    public static UploadBudget Unlimited { get; } = new(long.MaxValue, long.MaxValue);

    public long Total => total;

    public long PerSession => perSession;

    /// <summary>Bytes all unfinished uploads hold now.</summary>
    public long HeldBytes => Interlocked.Read(ref _held);

    public UploadAccount OpenAccount() => new(this);

    internal bool TryTake(long size)
    {
        var held = Interlocked.Read(ref _held);
        while (true)
        {
            if (size > total - held)
            {
                return false;
            }

            var seen = Interlocked.CompareExchange(ref _held, held + size, held);
            if (seen == held)
            {
                return true;
            }

            held = seen;
        }
    }

    internal void Give(long size) => Interlocked.Add(ref _held, -size);
}

/// <summary>One client's share of the <see cref="UploadBudget"/> (its put and task collectors together).</summary>
internal sealed class UploadAccount(UploadBudget budget)
{
    private long _held;

    public UploadBudget Budget => budget;

    /// <summary>Bytes this client's unfinished uploads hold now.</summary>
    public long HeldBytes => Interlocked.Read(ref _held);

    /// <summary>Takes <paramref name="size"/> bytes for this client; says which limit refused them otherwise.</summary>
    public UploadLimit TryTake(long size)
    {
        if (Interlocked.Add(ref _held, size) > budget.PerSession)
        {
            Interlocked.Add(ref _held, -size);
            return UploadLimit.Session;
        }

        if (!budget.TryTake(size))
        {
            Interlocked.Add(ref _held, -size);
            return UploadLimit.Server;
        }

        return UploadLimit.None;
    }

    public void Give(long size)
    {
        if (size != 0)
        {
            Interlocked.Add(ref _held, -size);
            budget.Give(size);
        }
    }
}

/// <summary>
/// One Datapath stream of a client: how to stop it, and when it has finished. Aborting a stream
/// whose handler has already returned is a no-op: Kestrel recycles a finished stream's
/// HttpContext, so touching it then would throw or, worse, abort an unrelated stream.
/// </summary>
internal sealed class StreamHandle(CancellationTokenSource streamCts, Microsoft.AspNetCore.Http.HttpContext httpContext)
{
    private readonly Lock _lock = new();
    private bool _ended;

    public TaskCompletionSource Finished { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

    /// <summary>Resets the stream (a real RST_STREAM for the client, not a clean end) and stops its handler.</summary>
    public void Abort()
    {
        lock (_lock)
        {
            if (_ended)
            {
                return;
            }

            // The HTTP/2 reset first: cancelling may run the handler's continuations inline.
            httpContext.Abort();
            streamCts.Cancel();
        }
    }

    /// <summary>Called by the handler as its very last step; later aborts do nothing.</summary>
    public void End()
    {
        lock (_lock)
        {
            _ended = true;
        }

        Finished.TrySetResult();
    }
}
