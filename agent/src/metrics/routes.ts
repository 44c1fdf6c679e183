/**
 * `GET /metrics`: the node's metrics in the Prometheus text format (mounted by the HTTP core, so
 * the Host/Origin guard and, bound to a non-loopback address, the bearer token apply).
 *
 * ```
 * curl -s localhost:8080/metrics | grep ^flexnode_inference
 * ```
 */
import type { HttpRoutes } from '../http/types.ts'
import type { MetricsService } from './index.ts'

export interface MetricsRoutesComponents {
  metrics: Pick<MetricsService, 'registry' | 'text'>
}

export function metricsRoutes (components: MetricsRoutesComponents): HttpRoutes {
  return {
    paths: {
      '/metrics': {
        GET: async ({ res, req }) => {
          const text = await components.metrics.text()
          res.writeHead(200, { 'content-type': components.metrics.registry.contentType, 'cache-control': 'no-store' })
          res.end(req.method === 'HEAD' ? undefined : text)
        }
      }
    }
  }
}
