using System.CodeDom.Compiler;
using System.Reflection;
using System.Runtime.CompilerServices;
using RayClient.Server;

namespace RayClient.Tests.Server;

/// <summary>
/// Rules about the shape of the embedded server that a reviewer cannot keep by eye across ~10k
/// lines: state is changed through methods of its owner, never by another class writing a field.
/// </summary>
public sealed class ServerStructureTests
{
    [Fact]
    public void ServerAssembly_HasNoWritableNonPrivateInstanceFields()
    {
        var offenders = new List<string>();
        foreach (var type in typeof(LocalRayServer).Assembly.GetTypes())
        {
            if (type.IsEnum || IsGenerated(type))
            {
                continue;
            }

            foreach (var field in type.GetFields(BindingFlags.Instance | BindingFlags.Public | BindingFlags.NonPublic | BindingFlags.DeclaredOnly))
            {
                if (field.IsPrivate || field.IsInitOnly || field.IsDefined(typeof(CompilerGeneratedAttribute)))
                {
                    continue;
                }

                offenders.Add($"{type.FullName}.{field.Name}");
            }
        }

        Assert.True(offenders.Count == 0, "Writable non-private instance fields (make them private and change them through a method of the owner): " + string.Join(", ", offenders));
    }

    /// <summary>
    /// The records of the engine (tasks, actor calls, actors, workers) and client sessions change
    /// only through methods of theirs, called by their owner: no property setter other code could
    /// call (init-only setters, which only object initializers use, are fine).
    /// </summary>
    [Fact]
    public void RuntimeRecords_HaveNoSettersOutsideTheirType()
    {
        string[] owned = ["RayClient.Server.Scheduling", "RayClient.Server.Workers", "RayClient.Server.Actors", "RayClient.Server.Engine"];
        var offenders = new List<string>();
        foreach (var type in typeof(LocalRayServer).Assembly.GetTypes())
        {
            if (IsGenerated(type) || !(owned.Contains(type.Namespace) || type == typeof(ClientSession)))
            {
                continue;
            }

            foreach (var property in type.GetProperties(BindingFlags.Instance | BindingFlags.Static | BindingFlags.Public | BindingFlags.NonPublic | BindingFlags.DeclaredOnly))
            {
                var setter = property.GetSetMethod(nonPublic: true);
                if (setter is null || setter.IsPrivate || setter.ReturnParameter.GetRequiredCustomModifiers().Contains(typeof(IsExternalInit)))
                {
                    continue;
                }

                offenders.Add($"{type.FullName}.{property.Name}");
            }
        }

        Assert.True(offenders.Count == 0, "Settable from outside their type (change them through a method of the owner): " + string.Join(", ", offenders));
    }

    [Fact]
    public void ServerEventIds_AreUnique()
    {
        var ids = EventIds();

        Assert.NotEmpty(ids);
        var duplicates = ids.GroupBy(kv => kv.Value).Where(g => g.Count() > 1).Select(g => $"{g.Key}: {string.Join(", ", g.Select(kv => kv.Key))}").ToList();
        Assert.True(duplicates.Count == 0, "Event ids used twice: " + string.Join("; ", duplicates));
    }

    [Fact]
    public void LoggerMessages_TakeTheirIdsFromServerEventIds()
    {
        var ids = EventIds();
        var used = new Dictionary<int, string>();
        var problems = new List<string>();
        const BindingFlags All = BindingFlags.Static | BindingFlags.Instance | BindingFlags.Public | BindingFlags.NonPublic | BindingFlags.DeclaredOnly;
        foreach (var method in typeof(LocalRayServer).Assembly.GetTypes().SelectMany(t => t.GetMethods(All)))
        {
            if (method.GetCustomAttribute<Microsoft.Extensions.Logging.LoggerMessageAttribute>() is not { } message)
            {
                continue;
            }

            var where = $"{method.DeclaringType!.Name}.{method.Name}";
            if (message.EventName is not { } name || !ids.TryGetValue(name, out var id) || id != message.EventId)
            {
                problems.Add($"{where} logs event {message.EventId} '{message.EventName}', which is not a ServerEventIds constant of that name");
            }

            if (!used.TryAdd(message.EventId, where))
            {
                problems.Add($"{where} and {used[message.EventId]} both log event {message.EventId}");
            }
        }

        Assert.True(used.Count > 0, "no [LoggerMessage] found: the reflection no longer sees them");
        Assert.True(problems.Count == 0, string.Join(Environment.NewLine, problems));
    }

    private static Dictionary<string, int> EventIds() =>
        typeof(ServerEventIds).GetFields(BindingFlags.Public | BindingFlags.Static)
            .Where(f => f.IsLiteral)
            .ToDictionary(f => f.Name, f => (int)f.GetRawConstantValue()!, StringComparer.Ordinal);

    /// <summary>Compiler-generated types (closures, state machines) and generated protobuf/gRPC code are not ours to shape.</summary>
    private static bool IsGenerated(Type type)
    {
        for (var current = type; current is not null; current = current.DeclaringType)
        {
            if (current.IsDefined(typeof(CompilerGeneratedAttribute)) || current.IsDefined(typeof(GeneratedCodeAttribute))
                || typeof(Google.Protobuf.IMessage).IsAssignableFrom(current)
                || current.Name.StartsWith('<'))
            {
                return true;
            }
        }

        return false;
    }
}
