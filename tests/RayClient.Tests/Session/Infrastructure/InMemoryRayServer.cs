using System.Collections.Concurrent;
using System.Threading.Channels;
using Grpc.Core;
using Ray.Rpc;

namespace RayClient.Tests.Session.Infrastructure;

/// <summary>
/// The transport a <c>RayConnection</c> talks to, in memory: every Datapath stream the client
/// opens is handed to the test as a <see cref="FakeDatapath"/> (the test reads what the client
/// wrote, answers, breaks or ends it), and PINGs run <see cref="Ping"/>. The connection logic
/// above it is the real one; only sockets and HTTP/2 are replaced.
/// </summary>
internal sealed class InMemoryRayServer : CallInvoker
{
    private readonly Channel<FakeDatapath> _streams = Channel.CreateUnbounded<FakeDatapath>();
    private int _pings;
    private int _opened;

    /// <summary>Answers a PING; default: at once. Receives the call's cancellation token.</summary>
    public Func<CancellationToken, Task<ClusterInfoResponse>> Ping { get; set; } = _ => Task.FromResult(new ClusterInfoResponse { Json = "{}" });

    /// <summary>Called with each new Datapath stream (and its 1-based number) before the client uses it.</summary>
    public Action<FakeDatapath, int>? Configure { get; set; }

    public int Pings => Volatile.Read(ref _pings);

    public int StreamsOpened => Volatile.Read(ref _opened);

    /// <summary>Signalled with the number of each PING as it starts.</summary>
    public Channel<int> PingStarted { get; } = Channel.CreateUnbounded<int>();

    /// <summary>The next Datapath stream the client opens (waits up to 10 s of real time).</summary>
    public async Task<FakeDatapath> NextStreamAsync() =>
        await _streams.Reader.ReadAsync().AsTask().WaitAsync(TimeSpan.FromSeconds(10));

    public override AsyncDuplexStreamingCall<TRequest, TResponse> AsyncDuplexStreamingCall<TRequest, TResponse>(Method<TRequest, TResponse> method, string? host, CallOptions options)
    {
        if (method.ServiceName == "ray.rpc.RayletLogStreamer")
        {
            // No log stream here: the client's pump stops, as against a server without one.
            var none = new RpcException(new Status(StatusCode.Unimplemented, "no log stream"));
            return new AsyncDuplexStreamingCall<TRequest, TResponse>(
                new NullWriter<TRequest>(), new FailingReader<TResponse>(none), Task.FromResult(new Metadata()), () => none.Status, () => [], () => { });
        }

        var stream = new FakeDatapath(options.Headers ?? [], options.CancellationToken);
        var number = Interlocked.Increment(ref _opened);
        Configure?.Invoke(stream, number);
        _streams.Writer.TryWrite(stream);
        return new AsyncDuplexStreamingCall<TRequest, TResponse>(
            (IClientStreamWriter<TRequest>)(object)stream, (IAsyncStreamReader<TResponse>)(object)stream, Task.FromResult(new Metadata()), () => Status.DefaultSuccess, () => [], () => { });
    }

    public override AsyncUnaryCall<TResponse> AsyncUnaryCall<TRequest, TResponse>(Method<TRequest, TResponse> method, string? host, CallOptions options, TRequest request)
    {
        if (request is not ClusterInfoRequest { Type: ClusterInfoType.Types.TypeEnum.Ping })
        {
            throw new NotSupportedException($"The in-memory server answers PINGs only, not {method.FullName}.");
        }

        var number = Interlocked.Increment(ref _pings);
        PingStarted.Writer.TryWrite(number);
        var response = Ping(options.CancellationToken);
        return new AsyncUnaryCall<TResponse>((Task<TResponse>)(object)response, Task.FromResult(new Metadata()), () => Status.DefaultSuccess, () => [], () => { });
    }

    public override TResponse BlockingUnaryCall<TRequest, TResponse>(Method<TRequest, TResponse> method, string? host, CallOptions options, TRequest request) => throw new NotSupportedException();

    public override AsyncServerStreamingCall<TResponse> AsyncServerStreamingCall<TRequest, TResponse>(Method<TRequest, TResponse> method, string? host, CallOptions options, TRequest request) => throw new NotSupportedException();

    public override AsyncClientStreamingCall<TRequest, TResponse> AsyncClientStreamingCall<TRequest, TResponse>(Method<TRequest, TResponse> method, string? host, CallOptions options) => throw new NotSupportedException();

    /// <summary>A PING that the server refuses at once (a server that is down or starting).</summary>
    public static Task<ClusterInfoResponse> Refuse(string detail = "connection refused") =>
        Task.FromException<ClusterInfoResponse>(new RpcException(new Status(StatusCode.Unavailable, detail)));

    /// <summary>A PING that is never answered (a black-holed network): it ends only when the client gives up on it.</summary>
    public static async Task<ClusterInfoResponse> Hang(CancellationToken cancellationToken)
    {
        await Task.Delay(Timeout.Infinite, cancellationToken);
        throw new InvalidOperationException("unreachable");
    }

    private sealed class NullWriter<T> : IClientStreamWriter<T>
    {
        public WriteOptions? WriteOptions { get; set; }

        public Task CompleteAsync() => Task.CompletedTask;

        public Task WriteAsync(T message) => Task.CompletedTask;
    }

    private sealed class FailingReader<T>(Exception error) : IAsyncStreamReader<T>
    {
        public T Current => throw new InvalidOperationException();

        public Task<bool> MoveNext(CancellationToken cancellationToken) => Task.FromException<bool>(error);
    }
}

/// <summary>One Datapath stream seen from the server's side.</summary>
internal sealed class FakeDatapath : IClientStreamWriter<DataRequest>, IAsyncStreamReader<DataResponse>
{
    private readonly Channel<DataRequest> _written = Channel.CreateUnbounded<DataRequest>();
    private readonly Channel<DataResponse> _responses = Channel.CreateUnbounded<DataResponse>();
    private readonly CancellationToken _callToken;
    private volatile Exception? _broken;
    private DataResponse? _current;

    public FakeDatapath(Metadata headers, CancellationToken callToken)
    {
        Headers = headers;
        _callToken = callToken;
    }

    public Metadata Headers { get; }

    /// <summary>The <c>reconnecting</c> metadata the client opened the stream with.</summary>
    public string? Reconnecting => Headers.GetValue("reconnecting");

    /// <summary>Every message the client wrote, in order.</summary>
    public ConcurrentQueue<DataRequest> Log { get; } = new();

    /// <summary>When set, called before each write; throwing from it fails that write (a connection cut mid-batch).</summary>
    public Func<DataRequest, Task>? BeforeWrite { get; set; }

    /// <summary>End the stream when the client sends ConnectionCleanup, as Ray's server does. Default: true.</summary>
    public bool EndOnCleanup { get; set; } = true;

    public bool HalfClosed { get; private set; }

    public WriteOptions? WriteOptions { get; set; }

    public DataResponse Current => _current ?? throw new InvalidOperationException("No response read yet.");

    /// <summary>The next message the client writes (waits up to 10 s of real time).</summary>
    public async Task<DataRequest> NextRequestAsync() =>
        await _written.Reader.ReadAsync().AsTask().WaitAsync(TimeSpan.FromSeconds(10));

    /// <summary>The next message of type <paramref name="type"/>, skipping others.</summary>
    public async Task<DataRequest> NextRequestAsync(DataRequest.TypeOneofCase type)
    {
        while (true)
        {
            var request = await NextRequestAsync();
            if (request.TypeCase == type)
            {
                return request;
            }
        }
    }

    public void Respond(DataResponse response) => _responses.Writer.TryWrite(response);

    /// <summary>Fails the stream as a cut connection does: the client's next read throws <paramref name="error"/>.</summary>
    public void Break(Exception error)
    {
        _broken = error;
        _responses.Writer.TryComplete();
    }

    /// <summary>Ends the stream gracefully (status OK).</summary>
    public void End() => _responses.Writer.TryComplete();

    public async Task WriteAsync(DataRequest message) => await WriteAsync(message, CancellationToken.None);

    public async Task WriteAsync(DataRequest message, CancellationToken cancellationToken)
    {
        cancellationToken.ThrowIfCancellationRequested();
        _callToken.ThrowIfCancellationRequested();
        if (_broken is { } broken)
        {
            throw broken;
        }

        if (BeforeWrite is { } before)
        {
            await before(message);
        }

        var copy = message.Clone(); // the client reuses its request objects for replays
        Log.Enqueue(copy);
        _written.Writer.TryWrite(copy);
        if (copy.TypeCase == DataRequest.TypeOneofCase.ConnectionCleanup && EndOnCleanup)
        {
            End();
        }
    }

    public Task CompleteAsync()
    {
        HalfClosed = true;
        return Task.CompletedTask;
    }

    public async Task<bool> MoveNext(CancellationToken cancellationToken)
    {
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, _callToken);
        if (await _responses.Reader.WaitToReadAsync(linked.Token) && _responses.Reader.TryRead(out var response))
        {
            _current = response;
            return true;
        }

        if (_broken is { } broken)
        {
            throw broken;
        }

        return false;
    }
}
