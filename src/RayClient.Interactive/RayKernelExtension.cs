using Microsoft.DotNet.Interactive;
using Microsoft.DotNet.Interactive.Commands;
using Microsoft.DotNet.Interactive.CSharp;
using Microsoft.DotNet.Interactive.Directives;
using Microsoft.DotNet.Interactive.Events;
using Microsoft.DotNet.Interactive.Formatting;

namespace RayClient.Interactive;

/// <summary>
/// RayClient's notebook extension: the <c>#!ray</c> magic command, formatters, and worker output
/// routed to the running cell. The package's <c>interactive-extensions/dotnet/extension.dib</c>
/// calls <see cref="Load"/> when <c>#r "nuget: RayClient.Interactive"</c> adds the package.
/// </summary>
public static class RayKernelExtension
{
    private static readonly Lock s_gate = new();
    private static readonly HashSet<Kernel> s_loaded = [];

    /// <summary>Adds the extension to a kernel (the root kernel of a notebook). Loading twice is a no-op.</summary>
    /// <param name="kernel">The root (composite) kernel, or a C# kernel.</param>
    public static void Load(Kernel kernel)
    {
        ArgumentNullException.ThrowIfNull(kernel);
        lock (s_gate)
        {
            if (!s_loaded.Add(kernel))
            {
                return;
            }
        }

        RayFormatters.Register();
        var notebook = new RayNotebook(kernel);
        RayNotebook.Current = notebook;

        var directive = new KernelActionDirective("#!ray")
        {
            Description = "Ray: connect (no address: start an embedded server for this kernel), status, disconnect.",
        };
        var connect = new KernelActionDirective("connect")
        {
            Description = "Connect the `ray` variable to ray://host:port, or to an embedded server started for this kernel.",
            KernelCommandType = typeof(RayConnect),
        };
        connect.Parameters.Add(new KernelDirectiveParameter("--address", "The ray://host:port address (default: start the embedded server)") { AllowImplicitName = true });
        directive.Subcommands.Add(connect);
        directive.Subcommands.Add(new KernelActionDirective("status") { Description = "Show the connection, nodes and resources.", KernelCommandType = typeof(RayStatus) });
        directive.Subcommands.Add(new KernelActionDirective("disconnect") { Description = "Close the session (and the embedded server).", KernelCommandType = typeof(RayDisconnect) });

        var target = kernel is CompositeKernel composite
            ? composite.ChildKernels.OfType<CSharpKernel>().FirstOrDefault() ?? kernel
            : kernel;
        target.AddDirective(directive, (_, context) =>
        {
            KernelInvocationContextExtensions.Display(context, "usage: #!ray connect [ray://host:port] | #!ray status | #!ray disconnect", "text/plain");
            return Task.CompletedTask;
        });
        target.RegisterCommandHandler<RayConnect>((command, context) => notebook.ConnectAsync(command.Address, context));
        target.RegisterCommandHandler<RayStatus>((_, context) => notebook.StatusAsync(context));
        target.RegisterCommandHandler<RayDisconnect>((_, context) => notebook.DisconnectAsync(context));

        // Track the running cell: worker output goes to it, and its interrupt cancels its waits.
        kernel.AddMiddleware(async (command, context, next) =>
        {
            if (command is SubmitCode)
            {
                using var cell = notebook.EnterCell(context);
                await next(command, context).ConfigureAwait(false);
                await notebook.SettleOutputAsync().ConfigureAwait(false);
            }
            else
            {
                await next(command, context).ConfigureAwait(false);
            }
        }, "RayClient.Interactive");
        kernel.RegisterForDisposal(() => notebook.DisposeAsync().AsTask().GetAwaiter().GetResult());
        lock (s_gate)
        {
            kernel.RegisterForDisposal(() =>
            {
                lock (s_gate)
                {
                    s_loaded.Remove(kernel);
                }
            });
        }

        if (KernelInvocationContext.Current is { } loading)
        {
            KernelInvocationContextExtensions.Display(loading, "RayClient loaded: #!ray connect [ray://host:port] defines `ray`; #!ray status; #!ray disconnect.", "text/plain");
        }
    }

    internal static void PublishOutput(KernelInvocationContext context, string text, bool error)
    {
        var values = new[] { new FormattedValue("text/plain", text) };
        context.Publish(error
            ? new StandardErrorValueProduced(context.Command, values)
            : new StandardOutputValueProduced(context.Command, values));
    }
}
