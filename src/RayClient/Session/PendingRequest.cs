using System.Buffers;
using Ray.Rpc;
using RayClient.Serialization;

namespace RayClient.Session;

/// <summary>
/// One tracked Datapath request: kept unchunked until its response has been consumed, so it can
/// be replayed after a reconnect (Ray: <c>dataclient.py :: outstanding_requests</c>). Response,
/// cancellation, timeout and disconnect race for one completion. Two kinds, typed by what they
/// complete with: <see cref="PendingCall"/> (a <see cref="DataResponse"/>) and
/// <see cref="PendingGet"/> (a <see cref="ReceivedObject"/> assembled from chunks).
/// </summary>
internal abstract class PendingRequest
{
    private protected PendingRequest(DataRequest request, PickledData? payload)
    {
        Request = request;
        Payload = payload;
    }

    /// <summary>The request without its chunked payload; its req_id is assigned when first written.</summary>
    public DataRequest Request { get; }

    /// <summary>Pickled put/task payload, split into chunks each time the request is (re)sent.</summary>
    public PickledData? Payload { get; }

    public int ReqId => Request.ReqId;

    public abstract bool IsCompleted { get; }

    /// <summary>Fails the request (error answer, timeout, cancellation, disconnect); false when it was already complete.</summary>
    public abstract bool TrySetException(Exception exception);
}

/// <summary>A request answered by one <see cref="DataResponse"/>.</summary>
internal sealed class PendingCall : PendingRequest
{
    private readonly TaskCompletionSource<DataResponse> _completion = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public PendingCall(DataRequest request, PickledData? payload = null)
        : base(request, payload)
    {
    }

    public Task<DataResponse> Completion => _completion.Task;

    public override bool IsCompleted => _completion.Task.IsCompleted;

    /// <summary>
    /// Runs on the completing thread (the stream's reader) instead of after a thread hop; for
    /// cheap internal bookkeeping such as resolving a ticket's ids. Set before the request is sent.
    /// </summary>
    public Action<DataResponse?, Exception?>? OnCompleted { get; set; }

    public bool TrySetResult(DataResponse response)
    {
        if (_completion.TrySetResult(response))
        {
            Payload?.Dispose();
            OnCompleted?.Invoke(response, null);
            return true;
        }

        return false;
    }

    public override bool TrySetException(Exception exception)
    {
        if (_completion.TrySetException(exception))
        {
            Payload?.Dispose();
            OnCompleted?.Invoke(null, exception);
            return true;
        }

        return false;
    }
}

/// <summary>An asynchronous get (spec §3.5): answered by one or more chunks that make one object.</summary>
internal sealed class PendingGet : PendingRequest
{
    private readonly TaskCompletionSource<ReceivedObject> _completion = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private byte[]? _assembly;
    private int _received;
    private int _nextChunk;

    public PendingGet(DataRequest request)
        : base(request, payload: null)
    {
        if (request.TypeCase != DataRequest.TypeOneofCase.Get || !request.Get.Asynchronous)
        {
            throw new ArgumentException("A PendingGet carries an asynchronous GetRequest.", nameof(request));
        }
    }

    public Task<ReceivedObject> Completion => _completion.Task;

    public override bool IsCompleted => _completion.Task.IsCompleted;

    /// <summary>Completes with the whole object; false (and the object disposed) when the request was already complete.</summary>
    public bool TrySetResult(ReceivedObject received)
    {
        if (_completion.TrySetResult(received))
        {
            return true;
        }

        received.Dispose();
        return false;
    }

    public override bool TrySetException(Exception exception)
    {
        if (_completion.TrySetException(exception))
        {
            ReturnAssembly();
            return true;
        }

        return false;
    }

    /// <summary>
    /// Adds one chunk of an async get (spec §3.5): repeats are ignored, gaps are errors, and the
    /// stored request's start_chunk_id advances so a replay resumes after the last chunk.
    /// </summary>
    /// <returns>The whole object once the last chunk arrived; otherwise null.</returns>
    public ReceivedObject? AddGetChunk(GetResponse chunk)
    {
        if (!chunk.Valid)
        {
            // Unknown id and similar: a single invalid response carrying a pickled error.
            return new ReceivedObject(chunk.Error.Memory, null, isError: true);
        }

        var total = Math.Max(chunk.TotalChunks, 1);
        var rented = PooledWire.TakeRentedBuffer(chunk); // the chunk's bytes may live in a pooled buffer
        if (chunk.ChunkId < _nextChunk || chunk.ChunkId > _nextChunk)
        {
            Return(rented);
            if (chunk.ChunkId < _nextChunk)
            {
                return null; // duplicate after a replay
            }

            throw new RayConnectionException(
                $"Received chunk {chunk.ChunkId} of an object before chunk {_nextChunk}: the stream lost data.", isTransient: true);
        }

        if (total == 1)
        {
            _nextChunk = 1;
            return new ReceivedObject(chunk.Data.Memory, rented, isError: false);
        }

        if (_assembly is null)
        {
            if (chunk.TotalSize > (ulong)Array.MaxLength)
            {
                Return(rented);
                throw new RayObjectTooLargeException(
                    string.Create(System.Globalization.CultureInfo.InvariantCulture, $"The object is {chunk.TotalSize / 1e9:0.00} GB, more than one .NET value can hold ({Array.MaxLength / 1e9:0.00} GB). Have Python split it into several objects and get them one by one."),
                    (long)Math.Min(chunk.TotalSize, long.MaxValue));
            }

            _assembly = ArrayPool<byte>.Shared.Rent((int)chunk.TotalSize);
        }

        if (_received + (long)chunk.Data.Length > _assembly.Length)
        {
            Return(rented);
            throw new RayConnectionException($"The chunks of an object add up to more than its announced size of {chunk.TotalSize} bytes.", isTransient: false);
        }

        chunk.Data.Span.CopyTo(_assembly.AsSpan(_received));
        _received += chunk.Data.Length;
        Return(rented);
        _nextChunk = chunk.ChunkId + 1;
        Request.Get.StartChunkId = _nextChunk;
        if (_nextChunk < total)
        {
            return null;
        }

        var result = new ReceivedObject(_assembly.AsMemory(0, _received), _assembly, isError: false);
        _assembly = null;
        return result;
    }

    private void ReturnAssembly() => Return(Interlocked.Exchange(ref _assembly, null));

    private static void Return(byte[]? rented)
    {
        if (rented is not null)
        {
            ArrayPool<byte>.Shared.Return(rented);
        }
    }
}

/// <summary>The bytes of one object received from the server (possibly in a pooled buffer).</summary>
internal sealed class ReceivedObject : IDisposable
{
    private byte[]? _pooled;

    public ReceivedObject(ReadOnlyMemory<byte> data, byte[]? pooled, bool isError)
    {
        Data = data;
        _pooled = pooled;
        IsError = isError;
    }

    public ReadOnlyMemory<byte> Data { get; private set; }

    /// <summary>True when <see cref="Data"/> is an error pickle rather than a value.</summary>
    public bool IsError { get; }

    public void Dispose()
    {
        var pooled = Interlocked.Exchange(ref _pooled, null);
        Data = default;
        if (pooled is not null)
        {
            ArrayPool<byte>.Shared.Return(pooled);
        }
    }
}
