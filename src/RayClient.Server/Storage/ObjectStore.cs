using System.Buffers;
using System.Collections.Concurrent;

namespace RayClient.Server.Storage;

/// <summary>One object: a pickled value or a pickled error, set once.</summary>
internal sealed class StoredObject
{
    private readonly TaskCompletionSource _ready = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly ObjectStore _store;
    private byte[]? _pooled;
    private long _accounted;
    private int _references;
    private List<Action>? _waiters;

    public StoredObject(RayId id, ObjectStore store)
    {
        Id = id;
        _store = store;
    }

    public RayId Id { get; }

    public Task Ready => _ready.Task;

    public bool IsReady => _ready.Task.IsCompleted;

    /// <summary>The pickle of the value, or of the exception when <see cref="IsError"/>.</summary>
    public ReadOnlyMemory<byte> Data { get; private set; }

    public bool IsError { get; private set; }

    /// <summary>Ids of refs pickled inside the value (kept alive while this object is).</summary>
    public IReadOnlyList<StoredObject>? Contained { get; private set; }

    /// <summary>
    /// Sets the object once. A value counts against the store's capacity (taken here, or before by
    /// the caller with <see cref="ObjectStore.TryReserve"/> when <paramref name="reserved"/>); a
    /// value that does not fit becomes Ray's <c>ObjectStoreFullError</c> instead.
    /// </summary>
    public bool TrySet(ReadOnlyMemory<byte> data, bool isError, byte[]? pooled = null, IReadOnlyList<StoredObject>? contained = null, bool reserved = false)
    {
        if (IsReady)
        {
            if (pooled is not null)
            {
                ArrayPool<byte>.Shared.Return(pooled);
            }

            if (reserved)
            {
                _store.Unreserve(data.Length);
            }

            return false;
        }

        if (!isError && !reserved && !_store.TryReserve(data.Length))
        {
            var full = _store.FullError(Id, data.Length);
            if (pooled is not null)
            {
                ArrayPool<byte>.Shared.Return(pooled);
            }

            foreach (var inner in contained ?? [])
            {
                _store.Release(inner);
            }

            (data, isError, pooled, contained) = (full, true, null, null);
        }
        else if (!isError)
        {
            _accounted = data.Length;
        }

        Data = data;
        IsError = isError;
        _pooled = pooled;
        Contained = contained;
        List<Action>? waiters;
        lock (_ready)
        {
            _ready.TrySetResult();
            waiters = _waiters;
            _waiters = null;
        }

        foreach (var waiter in waiters ?? [])
        {
            waiter(); // cheap, non-blocking callbacks (queueing a response): no thread hop
        }

        return true;
    }

    /// <summary>Runs <paramref name="callback"/> when the object is set (at once if it already is), on the setting thread.</summary>
    public void OnReady(Action callback)
    {
        lock (_ready)
        {
            if (!_ready.Task.IsCompleted)
            {
                (_waiters ??= []).Add(callback);
                return;
            }
        }

        callback();
    }

    public void AddReference() => Interlocked.Increment(ref _references);

    /// <summary>Drops one reference; returns true when it was the last.</summary>
    public bool RemoveReference() => Interlocked.Decrement(ref _references) == 0;

    public void Free()
    {
        var accounted = Interlocked.Exchange(ref _accounted, 0);
        var pooled = Interlocked.Exchange(ref _pooled, null);
        if (accounted > 0)
        {
            _store.OnFreed(accounted, pooled is not null);
        }

        if (pooled is not null && IsReady)
        {
            Data = default;
            ArrayPool<byte>.Shared.Return(pooled);
        }
    }
}

/// <summary>
/// The server's object table. An object lives while a client holds it or a queued task needs it;
/// clients hold what they put, what their tasks return and refs nested in values they got.
/// </summary>
internal sealed class ObjectStore(long capacity, MemoryReclaimer? reclaimer = null)
{
    private readonly ConcurrentDictionary<RayId, StoredObject> _objects = new();
    private long _counter;
    private long _used;

    /// <summary>A store without a capacity limit.</summary>
    public ObjectStore() : this(long.MaxValue)
    {
    }

    public int Count => _objects.Count;

    /// <summary>Bytes the store may hold (Ray's object_store_memory).</summary>
    public long Capacity => capacity;

    /// <summary>Bytes of the values stored now.</summary>
    public long UsedBytes => Interlocked.Read(ref _used);

    /// <summary>Takes <paramref name="size"/> bytes of the capacity; false (and nothing taken) when they do not fit.</summary>
    public bool TryReserve(long size)
    {
        var used = Interlocked.Read(ref _used);
        while (true)
        {
            if (size > capacity - used)
            {
                return false;
            }

            var seen = Interlocked.CompareExchange(ref _used, used + size, used);
            if (seen == used)
            {
                return true;
            }

            used = seen;
        }
    }

    public void Unreserve(long size) => Interlocked.Add(ref _used, -size);

    /// <summary>An object's value was freed (its bytes go back to the OS in time, see <see cref="MemoryReclaimer"/>).</summary>
    internal void OnFreed(long size, bool pooled)
    {
        Unreserve(size);
        if (size < 1024 * 1024 || reclaimer is null)
        {
            return;
        }

        if (pooled)
        {
            reclaimer.OnPooledFreed(size);
        }
        else
        {
            reclaimer.OnFreed(size);
        }
    }

    /// <summary>Ray's <c>ObjectStoreFullError</c> for an object of <paramref name="size"/> bytes that does not fit.</summary>
    public byte[] FullError(RayId id, long size) =>
        RayClient.Server.ServerErrors.Pickle("ray.exceptions", "ObjectStoreFullError", string.Create(System.Globalization.CultureInfo.InvariantCulture,
            $"Failed to put object {id.Hex} in object store because it is full. Object size is {size} bytes; the store holds {UsedBytes} of its {capacity} bytes (LocalRayServerOptions.ObjectStoreMemory, rayclient start --object-store-memory). The object store is full of objects that are still in scope and cannot be evicted: release the refs you no longer need, or give the server more object store memory."));

    public StoredObject Create()
    {
        // No reference yet: the caller takes one (a client hold, a task dependency).
        var entry = new StoredObject(RayId.NewUnique(28, ref _counter), this);
        _objects[entry.Id] = entry;
        return entry;
    }

    public bool TryGet(RayId id, out StoredObject entry) => _objects.TryGetValue(id, out entry!);

    /// <summary>
    /// <c>ray.put</c> of <paramref name="session"/>: stores <paramref name="data"/> (whose pooled
    /// buffer, if any, the store owns from now on) as a new object the session holds, keeping the
    /// objects it refers to alive. Null, with Ray's error pickle in <paramref name="error"/>, when
    /// it refers to an object the session does not hold or the store is full; what the store
    /// holds already stays.
    /// </summary>
    public StoredObject? TryPut(ClientSession session, ReadOnlyMemory<byte> data, byte[]? pooled, out byte[]? error)
    {
        List<StoredObject> contained;
        try
        {
            contained = RefScanner.FindHeld(session, data, out _);
        }
        catch (TicketException ex)
        {
            ReturnPooled(pooled);
            error = ex.ErrorPickle;
            return null;
        }

        if (!TryReserve(data.Length))
        {
            // Ray's ray.put raises ObjectStoreFullError.
            ReturnPooled(pooled);
            error = FullError(new RayId(new byte[28]), data.Length);
            return null;
        }

        var entry = Create();
        session.Hold(entry);
        entry.TrySet(data, isError: false, pooled, contained, reserved: true);
        error = null;
        return entry;
    }

    private static void ReturnPooled(byte[]? pooled)
    {
        if (pooled is not null)
        {
            System.Buffers.ArrayPool<byte>.Shared.Return(pooled);
        }
    }

    public void Release(StoredObject entry)
    {
        if (entry.RemoveReference())
        {
            _objects.TryRemove(entry.Id, out _);
            var contained = entry.Contained;
            entry.Free();
            if (contained is not null)
            {
                foreach (var inner in contained)
                {
                    Release(inner);
                }
            }
        }
    }
}
