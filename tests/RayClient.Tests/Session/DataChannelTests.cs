using Grpc.Core;
using RayClient.Session;

namespace RayClient.Tests.Session;

public sealed class DataChannelTests
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
        Assert.Equal(recoverable, DataChannel.IsRecoverable(new RpcException(new Status(code, "x"))));
    }

    [Fact]
    public void IsRecoverable_SerializationFailure_IsNot()
    {
        Assert.False(DataChannel.IsRecoverable(new RpcException(new Status(StatusCode.Internal, "Exception serializing request!"))));
        Assert.True(DataChannel.IsRecoverable(new IOException("reset")));
    }
}
