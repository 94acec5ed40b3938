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
