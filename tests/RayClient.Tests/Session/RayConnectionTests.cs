using System.Collections.Concurrent;
using Grpc.Core;
using Ray.Rpc;
using RayClient.Session;

namespace RayClient.Tests.Session;

public sealed class RayConnectionTests
{
    [Theory]
    [InlineData(StatusCode.Unavailable, true)]
    [InlineData(StatusCode.Cancelled, true)]
    [InlineData(StatusCode.DeadlineExceeded, true)]
    [InlineData(StatusCode.Unknown, true)]
    [InlineData(StatusCode.NotFound, false)]
    [InlineData(StatusCode.FailedPrecondition, false)]
    [InlineData(StatusCode.ResourceExhausted, false)]
    [InlineData(StatusCode.InvalidArgument, false)]
    [InlineData(StatusCode.Aborted, false)]
    public void IsRecoverable_StatusCodes_FollowRay(StatusCode code, bool recoverable)
    {
        Assert.Equal(recoverable, RayConnection.IsRecoverable(new RpcException(new Status(code, "x"))));
    }

    [Fact]
    public void IsRecoverable_SerializationFailure_IsNot()
    {
        Assert.False(RayConnection.IsRecoverable(new RpcException(new Status(StatusCode.Internal, "Exception serializing request!"))));
        Assert.True(RayConnection.IsRecoverable(new IOException("reset")));
    }

    [Fact]
    public async Task WriteLoop_RequestFollowedByAnAbandonedOne_IsFlushedNotLeftBuffered()
    {
        // A request written with the buffer hint sits in the HTTP/2 buffer until a later write
        // flushes it; if the request queued behind it was abandoned (a get that timed out), no
        // later write may come, and the first request would wait forever in an idle session.
        var stream = new RecordingStream();
        var settings = ConnectionSettings.Resolve(new RaySessionOptions { Address = "ray://127.0.0.1:1" }, _ => null);
        await using var channel = new RayConnection(settings, new OneStreamInvoker(stream), channel: null);
        var sent = channel.Enqueue(new PendingCall(new DataRequest { ConnectionInfo = new ConnectionInfoRequest() }));
        var abandoned = channel.Enqueue(new PendingCall(new DataRequest { ConnectionInfo = new ConnectionInfoRequest() }));
        channel.Abandon(abandoned, new OperationCanceledException());

        channel.StartDatapath();
        await stream.Written.Task.WaitAsync(TimeSpan.FromSeconds(30));

        var write = Assert.Single(stream.Writes);
        Assert.Equal(sent.ReqId, write.ReqId);
        Assert.Null(write.Options); // flushed: nothing certain follows it
    }

    /// <summary>A Datapath stream that records what the client writes, never answers, and ends when the client half-closes.</summary>
    private sealed class RecordingStream : IClientStreamWriter<DataRequest>, IAsyncStreamReader<DataResponse>
    {
        private readonly TaskCompletionSource _halfClosed = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public ConcurrentQueue<(int ReqId, WriteOptions? Options)> Writes { get; } = new();

        public TaskCompletionSource Written { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public WriteOptions? WriteOptions { get; set; }

        public DataResponse Current => throw new InvalidOperationException("No responses.");

        public Task WriteAsync(DataRequest message) => WriteAsync(message, CancellationToken.None);

        public Task WriteAsync(DataRequest message, CancellationToken cancellationToken)
        {
            Writes.Enqueue((message.ReqId, WriteOptions));
            Written.TrySetResult();
            return Task.CompletedTask;
        }

        public Task CompleteAsync()
        {
            _halfClosed.TrySetResult();
            return Task.CompletedTask;
        }

        public async Task<bool> MoveNext(CancellationToken cancellationToken)
        {
            await _halfClosed.Task.WaitAsync(cancellationToken);
            return false;
        }
    }

    private sealed class OneStreamInvoker(RecordingStream stream) : CallInvoker
    {
        public override AsyncDuplexStreamingCall<TRequest, TResponse> AsyncDuplexStreamingCall<TRequest, TResponse>(Method<TRequest, TResponse> method, string? host, CallOptions options) =>
            new((IClientStreamWriter<TRequest>)(object)stream, (IAsyncStreamReader<TResponse>)(object)stream, Task.FromResult(new Metadata()), () => Status.DefaultSuccess, () => [], () => { });

        public override TResponse BlockingUnaryCall<TRequest, TResponse>(Method<TRequest, TResponse> method, string? host, CallOptions options, TRequest request) => throw new NotSupportedException();

        public override AsyncUnaryCall<TResponse> AsyncUnaryCall<TRequest, TResponse>(Method<TRequest, TResponse> method, string? host, CallOptions options, TRequest request) => throw new NotSupportedException();

        public override AsyncServerStreamingCall<TResponse> AsyncServerStreamingCall<TRequest, TResponse>(Method<TRequest, TResponse> method, string? host, CallOptions options, TRequest request) => throw new NotSupportedException();

        public override AsyncClientStreamingCall<TRequest, TResponse> AsyncClientStreamingCall<TRequest, TResponse>(Method<TRequest, TResponse> method, string? host, CallOptions options) => throw new NotSupportedException();
    }
}
