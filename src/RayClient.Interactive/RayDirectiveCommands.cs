using Microsoft.DotNet.Interactive.Commands;

namespace RayClient.Interactive;

/// <summary><c>#!ray connect [address]</c>: connects the kernel's <c>ray</c> session (no address: an embedded server started for this kernel).</summary>
public sealed class RayConnect : KernelDirectiveCommand
{
    /// <summary>The cluster's <c>ray://host:port</c> address; null starts the embedded server as a child process.</summary>
    public string? Address { get; set; }
}

/// <summary><c>#!ray status</c>: shows the connection, the nodes and the cluster's resources.</summary>
public sealed class RayStatus : KernelDirectiveCommand
{
}

/// <summary><c>#!ray disconnect</c>: closes the session (and stops the embedded server this kernel started).</summary>
public sealed class RayDisconnect : KernelDirectiveCommand
{
}
